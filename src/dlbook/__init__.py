"""dlbook: the helper package of "Deep Learning, from the Perceptron to LLMs".

Each module holds one idea that several chapters reuse:

- ``dlbook.data``: the book's small data sets, verified by sha256.
- ``dlbook.training``: ``fit``, the one training loop, plus device choice and seeding.
- ``dlbook.interactive``: plots with sliders that work live and on the static website.
- ``dlbook.notebook``: a chapter's set-up (``setup_chapter``), figures with alt text (``show``),
  sentences that quote computed numbers (``say``), library source shown to the reader
  (``show_source``).
- ``dlbook.plots``: drawing that several chapters share (learning curves, decision boundaries, ...).
- ``dlbook.style``: the book's figure style.
- ``dlbook.models``: small shared models (``MLP``).
- ``dlbook.perceptron``: McCulloch-Pitts units and Rosenblatt's perceptron (chapter 02).
- ``dlbook.autograd``: a scalar reverse-mode autograd engine (chapter 03).
- ``dlbook.optim``: optimizers written from their update equations (chapter 04).
- ``dlbook.initialization``: initialization schemes and the depth experiment (chapter 04).

Importing the package does no work and changes no global state.
"""
__version__ = "0.1.0"
