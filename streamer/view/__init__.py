"""The live view: a web page beside the API that shows what the service sees.

``facestream serve`` starts it on its own port (``view.port``, by default the API's
port + 1) on the API's host and behind the API's token (:mod:`.access`). Its server
(:mod:`.server`, :mod:`.app`) is a client of the API for the streams (list, submit,
stop) and reads Redis for the rest: each watched stream's newest frame, drawn here with
:func:`streamer.report.annotate.draw_records` and sent as MJPEG (:mod:`.frames`), and
its records of the last ``view.history_s`` seconds as curves per person
(:mod:`.curves`), both as a browser takes them without a library: ``multipart/x-mixed-
replace`` in an ``<img>`` and Server-Sent Events. The pages (``static/``) are plain HTML,
CSS and JS served from the package; nothing is fetched from elsewhere.
"""
