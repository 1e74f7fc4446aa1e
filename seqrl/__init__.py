"""seqrl: offline reinforcement learning on the Hugging Face stack.

The public API (:mod:`seqrl.api`): ``seqrl.train``, ``seqrl.evaluate``, ``seqrl.load_policy``, ``seqrl.load_dataset``.
They are imported on first use, so that ``import seqrl`` (and every command's start) stays light.
"""

__all__ = ["evaluate", "load_dataset", "load_policy", "train"]


def __getattr__(name: str):
    if name in __all__:
        from seqrl import api

        return getattr(api, name)
    raise AttributeError(f"module 'seqrl' has no attribute {name!r}")
