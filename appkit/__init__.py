"""The Gradio app's library: what the four tabs call (`python app.py` is the entry point).

    catalog.py    which checkpoints the app serves (start-up checks; the API can load nothing else)
    models.py     models loaded lazily, once, with an LRU bound; one clip or transcript parsed into a frame
    examples.py   example clips (the demo corpus when it lands, espeak-ng sentences until then)
    runs.py       run folders: dev curves, test metrics, config summary
    planning.py   the planner's target and budget modes as tables, figures and CSV
    reporting.py  the Table-2-style report of a results table and its SLU-F1-versus-speech plot
    ui.py         the Blocks layout, one thin handler per endpoint, and the launch settings

Nothing here imports torch, transformers or gradio at module import; they load on first use.
"""
