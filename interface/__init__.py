"""The interface layer: the Flask API, its schemas, auth and error mapping,
and the ``suitesub`` command-line tool."""
