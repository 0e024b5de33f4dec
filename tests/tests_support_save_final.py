"""A callback that saves the final training state to ``<default_root_dir>/final.ckpt``."""

from pathlib import Path

import lightning as L


class SaveFinal(L.Callback):
    def on_train_end(self, trainer, pl_module):
        trainer.save_checkpoint(Path(trainer.default_root_dir) / "final.ckpt")
