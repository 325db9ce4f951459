"""Checkpointer whose files are written atomically."""

import os

from ..utils.checkpoint import SafeDetectionCheckpointer

__all__ = ["AtomicDetectionCheckpointer"]


class AtomicDetectionCheckpointer(SafeDetectionCheckpointer):
    """:class:`SafeDetectionCheckpointer` that never leaves a half-written checkpoint behind.

    Each checkpoint is written under a temporary name and renamed into place, and
    ``last_checkpoint`` is replaced the same way, so a job killed while saving resumes from the
    previous complete checkpoint. Files are the usual model-zoo style ``model_*.pth``.
    """

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        partial = f"{name}.partial"
        super().save(partial, **kwargs)
        os.replace(
            os.path.join(self.save_dir, f"{partial}.pth"),
            os.path.join(self.save_dir, f"{name}.pth"),
        )
        self.tag_last_checkpoint(f"{name}.pth")

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        save_file = os.path.join(self.save_dir, "last_checkpoint")
        with open(save_file + ".partial", "w") as f:
            f.write(last_filename_basename)
        os.replace(save_file + ".partial", save_file)
