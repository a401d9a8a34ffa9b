"""What a user looks at after a run: the HTML report (plots per stream, track and person)
and the annotated video."""
