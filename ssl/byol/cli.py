"""The ``byol`` command: ``byol fit -c configs/<recipe>.yaml`` and friends."""

from __future__ import annotations

import warnings

from lightning.pytorch.cli import LightningCLI

from .core.base import OnlineTargetModule
from .data.datamodule import DataModule


class ByolCLI(LightningCLI):
    """LightningCLI over any :class:`OnlineTargetModule` and any datamodule, chosen by ``class_path``.

    Every constructor argument is a config key. The method builds its own
    optimizer from its ``optimizer`` argument, so the CLI's automatic
    optimizer options are off.
    """

    def __init__(self, args: list[str] | None = None, **kwargs) -> None:
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        # Methods make views in on_after_batch_transfer on purpose; Lightning warns about that with a datamodule.
        warnings.filterwarnings("ignore", message="You have overridden `on_after_batch_transfer`")
        super().__init__(
            OnlineTargetModule,
            DataModule,
            subclass_mode_model=True,
            subclass_mode_data=True,
            auto_configure_optimizers=False,
            args=args,
            **kwargs,
        )


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``byol`` console script (``argv`` defaults to the command line)."""
    ByolCLI(args=argv)


if __name__ == "__main__":
    main()
