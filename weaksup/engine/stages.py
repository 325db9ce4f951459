"""Cached stages of multi-stage pipelines: a stage is redone exactly when what made it changed.

A :class:`Stage` has a name, the output it makes (a file or a folder), the settings that
determine that output (json-able: config values, dataset names, ...) and its inputs: earlier
stages (their fingerprints), files (size and modification time) and the registered datasets it
reads, by content (:func:`~weaksup.data.datasets.fingerprint.dataset_fingerprint`: their records
and their image files), so an edited box or a replaced image redoes the stage, not only a
renamed dataset. Its *fingerprint* is a hash of
all of them (an earlier stage counts with the run that made its output, so redoing it from
scratch redoes the stages after it). :func:`run_stage` keeps a record next to the output
(``<file>.stage.json``, or ``<folder>/stage.json``) holding the fingerprint, the settings, the
run and whether the stage finished, and decides, logging which case applies and why:

* record complete, same fingerprint, output there: **skipped** ("up to date");
* record incomplete, same fingerprint: **resumed** (the stage's body reuses its finished work:
  checkpoints, shards, per-image files), unless the interrupted run had other ``resume_settings``
  (e.g. a training schedule scaled to another number of processes): then every process stops
  with an error naming them, and nothing is removed;
* no record, or another fingerprint: **rerun from scratch** after the stage's ``clear`` removed
  the stale output; the log names the settings or inputs that changed.

Every process of a job calls :func:`run_stage`; only the main process reads and writes the
record and clears, and all processes take the same decision. They wait for each other at the
stage's start and end without the process-group timeout (:func:`~weaksup.engine.launch.wait_for_all`),
and a stage's folder must be the same for all of them (checked).
"""

import hashlib
import json
import logging
import os
import shutil
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

from detectron2.utils import comm

from ..data.datasets.fingerprint import dataset_fingerprint
from ..utils.coco_json import json_excerpt
from ..utils.file_io import file_identity
from .launch import broadcast_from_main, check_shared_folder, wait_for_all

__all__ = [
    "Stage",
    "run_stage",
    "stage_changes",
    "stage_fingerprint",
    "stage_record_path",
]

logger = logging.getLogger(__name__)


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


@dataclass
class Stage:
    """One cached stage of a pipeline.

    Args:
        name: shown in the log, e.g. ``"stage 2 (pennfudan_train)"``.
        output: the file or folder the stage makes.
        settings: everything (json-able) that determines the output besides ``inputs``.
        inputs: earlier :class:`Stage` s (by fingerprint) or file paths (by size and mtime).
        is_dir: ``output`` is a folder (record inside it) rather than a file (record beside it).
        clear: removes a stale output before a rerun; default: the file (and ``<file>.work``) or
            the folder's contents.
        datasets: names of the registered datasets the stage reads (by content).
        resume_settings: what an interrupted run must share with this one to be resumed, not
            part of the fingerprint (a finished stage is not redone when they change).
    """

    name: str
    output: str
    settings: Dict[str, Any]
    inputs: Sequence[Union["Stage", str]] = ()
    is_dir: bool = False
    clear: Optional[Callable[[], None]] = field(default=None, repr=False)
    datasets: Sequence[str] = ()
    resume_settings: Dict[str, Any] = field(default_factory=dict)
    _data: Optional[Dict[str, Any]] = field(default=None, init=False, repr=False, compare=False)

    def data_fingerprints(self) -> Dict[str, Any]:
        """``{"data:<name>": dataset_fingerprint(name)}`` of :attr:`datasets`, computed once per
        :class:`Stage` (a dataset loads once per decision, however often it is fingerprinted)."""
        if self._data is None:
            self._data = {f"data:{n}": dataset_fingerprint(n) for n in self.datasets}
        return self._data

    def input_fingerprints(self) -> Dict[str, Any]:
        out = dict(self.data_fingerprints())
        for x in self.inputs:
            if isinstance(x, Stage):  # its settings and the run that made its output
                run = (_read_record(stage_record_path(x)) or {}).get("run")
                out[f"stage:{x.name}"] = [x.fingerprint, run]
            else:
                out[os.path.abspath(x)] = file_identity(x)
        return out

    @property
    def fingerprint(self) -> str:
        return stage_fingerprint(self.settings, self.input_fingerprints())


def stage_fingerprint(settings: Dict[str, Any], inputs: Dict[str, Any]) -> str:
    """The hash of a stage's settings and input fingerprints."""
    return _digest({"settings": settings, "inputs": inputs})


def stage_record_path(stage: Stage) -> str:
    if stage.is_dir:
        return os.path.join(stage.output, "stage.json")
    return stage.output + ".stage.json"


def _read_record(path: str) -> Optional[Dict[str, Any]]:
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _write_record(stage: Stage, complete: bool, run: str) -> None:
    # local import: the pseudo layer is torch-free and below the engine
    from ..utils.file_io import write_json_atomic

    record = {
        "name": stage.name,
        "fingerprint": stage.fingerprint,
        "settings": stage.settings,
        "inputs": stage.input_fingerprints(),
        "resume_settings": stage.resume_settings,
        "complete": complete,
        "run": run,
    }
    write_json_atomic(record, stage_record_path(stage))


def _changes(old: Dict[str, Any], new: Dict[str, Any], prefix: str = "") -> List[str]:
    """``key: old -> new`` for every leaf that differs between two json-like dicts."""
    out = []
    for k in sorted(set(old) | set(new), key=str):
        a, b = old.get(k, "<unset>"), new.get(k, "<unset>")
        if isinstance(a, dict) and isinstance(b, dict):
            out += _changes(a, b, f"{prefix}{k}.")
        elif a != b:
            out.append(f"{prefix}{k}: {json_excerpt(a)} -> {json_excerpt(b)}")
    return out


def _default_clear(stage: Stage) -> None:
    if stage.is_dir:
        if os.path.isdir(stage.output):
            for name in os.listdir(stage.output):
                path = os.path.join(stage.output, name)
                shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
        return
    for path in (stage.output, stage.output + ".work"):
        if os.path.isdir(path):
            shutil.rmtree(path)
        elif os.path.exists(path):
            os.remove(path)


def _matches(stage: Stage, record: Dict[str, Any]) -> bool:
    """Whether ``record`` was made by ``stage``'s settings and inputs (module docstring)."""
    return record.get("fingerprint") == stage.fingerprint  # settings and the inputs' records


def _decide(stage: Stage, output_done: Callable[[], bool]) -> Dict[str, Any]:
    """Main process: ``{"action": "skip" | "resume" | "rerun" | "refuse", "reason": str}``."""
    record = _read_record(stage_record_path(stage))
    if record is None:
        if output_done():
            return {"action": "rerun", "reason": f"no record of what made {stage.output}"}
        fresh = not os.path.exists(stage.output)
        return {"action": "rerun", "reason": f"{stage.output} not made yet", "fresh": fresh}
    if not _matches(stage, record):
        return {"action": "rerun", "reason": "changed " + stage_changes(stage)}
    if record.get("complete") and output_done():
        return {"action": "skip", "reason": f"{stage.output} is up to date"}
    recorded = record.get("resume_settings", {})
    changes = _changes(recorded, json.loads(json.dumps(stage.resume_settings, default=str)))
    if changes:
        return {
            "action": "refuse",
            "reason": f"{stage.name}: the interrupted run in {stage.output} cannot be resumed with "
            f"other settings ({'; '.join(changes)}): run the job as it was to resume it, or "
            "remove that folder to start the stage anew",
        }
    if record.get("complete"):
        return {"action": "resume", "reason": f"{stage.output} is incomplete or missing"}
    return {"action": "resume", "reason": "an interrupted run of the same settings"}


def run_stage(
    stage: Stage,
    body: Callable[[], Any],
    output_done: Optional[Callable[[], bool]] = None,
    skipped: Optional[Callable[[], Any]] = None,
    force: str = "",
) -> Any:
    """Run or skip ``stage`` (module docstring); call in every process of the job.

    Args:
        body: makes the output (resuming its own finished work where it can); its return value
            is returned.
        output_done: whether the output is there and whole (default: it exists).
        skipped: called instead of ``body`` when the stage is skipped (default: returns None).
        force: a reason to run ``body`` whatever the record says (it is then written anew).
    """
    output_done = output_done or (lambda: os.path.exists(stage.output))
    check_shared_folder(stage.output if stage.is_dir else os.path.dirname(stage.output) or ".")
    decision = [None]
    if comm.is_main_process():
        decision[0] = (
            {"action": "rerun", "reason": force, "fresh": True}
            if force
            else _decide(stage, output_done)
        )
    decision = broadcast_from_main(decision[0])
    action, reason = decision["action"], decision["reason"]
    if action == "refuse":
        raise RuntimeError(reason)
    if action == "skip":
        logger.info(f"{stage.name}: skipped, {reason} (fingerprint {stage.fingerprint[:12]})")
        return skipped() if skipped else None
    if force:
        logger.info(f"{stage.name}: {reason}")
    elif action == "rerun":
        logger.info(f"{stage.name}: running from scratch: {reason}")
    else:
        logger.info(f"{stage.name}: resuming: {reason}")
    if comm.is_main_process():
        if action == "rerun":
            run = uuid.uuid4().hex  # a new run: the stages that read this one are redone too
            if not decision.get("fresh"):
                (stage.clear or (lambda: _default_clear(stage)))()
        else:  # resumed: the same run, completed
            run = (_read_record(stage_record_path(stage)) or {}).get("run") or uuid.uuid4().hex
        if stage.is_dir:
            os.makedirs(stage.output, exist_ok=True)
        _write_record(stage, complete=False, run=run)
    wait_for_all()
    result = body()
    wait_for_all()
    if comm.is_main_process():
        _write_record(stage, complete=True, run=run)
    wait_for_all()
    return result


def stage_changes(stage: Stage) -> Optional[str]:
    """What changed since ``stage``'s recorded run (settings and inputs; None when nothing did or
    there is no record); read on the main process."""
    record = _read_record(stage_record_path(stage))
    if record is None or _matches(stage, record):
        return None
    old = record.get("settings", {})
    # as recorded (json): a tuple setting is not "changed" into the list the record holds
    changes = _changes(old, json.loads(json.dumps(stage.settings, default=str)))
    changes += _changes(record.get("inputs", {}), stage.input_fingerprints(), "input ")
    return "; ".join(changes) or "fingerprint"
