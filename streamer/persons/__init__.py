"""Persons: which tracks show one face (the person book), and where person ids come from
(the stream itself or a deployment-wide Redis gallery)."""
