"""Checkpointer whose files are written atomically."""

import os

from ..utils.checkpoint import SafeDetectionCheckpointer

__all__ = ["AtomicDetectionCheckpointer"]


class AtomicDetectionCheckpointer(SafeDetectionCheckpointer):
    """:class:`SafeDetectionCheckpointer` that never leaves a half-written checkpoint behind.

    Each checkpoint is written under a temporary name and renamed into place, and
    ``last_checkpoint`` is replaced the same way, so a job killed while saving resumes from the
    previous complete checkpoint. Files are the usual model-zoo style ``model_*.pth``.
    ``last_checkpoint`` is only ever pointed at a complete file: fvcore's ``save`` tags the file it
    has just written (here the temporary one), so that tag is skipped and written after the rename.
    """

    _saving_partial = False

    def save(self, name: str, **kwargs) -> None:
        if not self.save_dir or not self.save_to_disk:
            return
        partial = f"{name}.partial"
        self._saving_partial = True
        try:
            super().save(partial, **kwargs)
        finally:
            self._saving_partial = False
        os.replace(
            os.path.join(self.save_dir, f"{partial}.pth"),
            os.path.join(self.save_dir, f"{name}.pth"),
        )
        self.tag_last_checkpoint(f"{name}.pth")

    def tag_last_checkpoint(self, last_filename_basename: str) -> None:
        if self._saving_partial:  # the temporary file: tagged only once renamed (save)
            return
        save_file = os.path.join(self.save_dir, "last_checkpoint")
        with open(save_file + ".partial", "w") as f:
            f.write(last_filename_basename)
        os.replace(save_file + ".partial", save_file)
