"""TensorBoard for a search: one run per trial with its scalars and an HParams entry.

The driver writes it (a Tune callback), into results/<name>/tensorboard/trials/<trial_id>/,
so workers need no TensorBoard and the dashboard sees each epoch as soon as Tune does.

HParams: the session-start record goes in when a trial starts, so a trial that ASHA stops
after its grace epochs is in the table and the parallel-coordinates view like any other.
Every searched parameter of the space is written for every trial: one that a trial's branch
does not use is written as "unused" rather than left out (Ray's own logger drops parameters
whose types differ between trials, Ray issue 40053). No experiment summary is written:
TensorBoard infers one from the trials, which keeps several experiments under one logdir
side by side (`digitsearch dashboard` over all of results/).
"""
from __future__ import annotations

import math
import time
from pathlib import Path

from ray import tune
from tensorboard.compat.proto.summary_pb2 import Summary, SummaryMetadata
from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2
from torch.utils.tensorboard import SummaryWriter

from digitsearch.spaces import SearchSpace
from digitsearch.store.layout import trial_runs_dir

UNUSED = "unused"
# what each epoch's result contributes to the trial's run, by result key
# (latency_ms and model_kb: measured once, the same every epoch; HParams' views plot val_acc against them)
SCALARS = ("train_loss", "train_acc", "val_loss", "val_acc", "lr", "epoch_seconds", "images_per_second",
           "latency_ms", "model_kb")


def hparam_values(space: SearchSpace, config: dict) -> dict[str, object]:
    """One value per searched parameter: numbers (numeric choices too) stay numbers, other
    choices become text, an inactive branch's parameters read "unused"."""
    values: dict[str, object] = {}
    for param in space.params:
        if param.name not in config:
            values[param.name] = UNUSED
        elif param.kind != "choice" or all(_is_number(v) for v in param.values):
            values[param.name] = float(config[param.name])  # an axis, not a list, in TensorBoard's views
        else:
            values[param.name] = str(config[param.name])
    return values


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _hparams_summary(tag: str, **record) -> Summary:
    # tensorboard's own hparams.summary helpers import TensorFlow; these are the same protos
    content = plugin_data_pb2.HParamsPluginData(version=metadata.PLUGIN_DATA_VERSION, **record)
    plugin = SummaryMetadata.PluginData(plugin_name=metadata.PLUGIN_NAME, content=content.SerializeToString())
    return Summary(value=[Summary.Value(tag=tag, metadata=SummaryMetadata(plugin_data=plugin))])


def session_start(values: dict[str, object]) -> Summary:
    info = plugin_data_pb2.SessionStartInfo(start_time_secs=time.time())
    for name, value in values.items():
        if isinstance(value, str):
            info.hparams[name].string_value = value
        else:
            info.hparams[name].number_value = value
    return _hparams_summary(metadata.SESSION_START_INFO_TAG, session_start_info=info)


def session_end(status: int) -> Summary:
    info = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=time.time())
    return _hparams_summary(metadata.SESSION_END_INFO_TAG, session_end_info=info)


class TrialBoard(tune.Callback):
    """A Tune callback that writes every trial's TensorBoard run."""

    def __init__(self, experiment: Path, space: SearchSpace):
        self.root = trial_runs_dir(experiment)
        self.space = space
        self.writers: dict[str, SummaryWriter] = {}

    def _writer(self, trial) -> SummaryWriter:
        if trial.trial_id not in self.writers:
            writer = SummaryWriter(str(self.root / trial.trial_id))
            writer.file_writer.add_summary(session_start(hparam_values(self.space, trial.config)))
            self.writers[trial.trial_id] = writer
        return self.writers[trial.trial_id]

    def on_trial_start(self, iteration, trials, trial, **info):
        self._writer(trial).flush()

    def on_trial_result(self, iteration, trials, trial, result, **info):
        writer = self._writer(trial)
        step = int(result.get("epoch", 0))
        for key in SCALARS:
            value = result.get(key)
            if isinstance(value, (int, float)) and math.isfinite(value):
                writer.add_scalar(key, value, step)
        if result.get("note"):  # infeasible, over budget, diverged: the reason beside the numbers
            writer.add_text("note", str(result["note"]), step)
        writer.flush()

    def on_trial_complete(self, iteration, trials, trial, **info):
        self._end(trial, api_pb2.STATUS_SUCCESS)

    def on_trial_error(self, iteration, trials, trial, **info):
        self._end(trial, api_pb2.STATUS_FAILURE)

    def _end(self, trial, status) -> None:
        writer = self._writer(trial)
        writer.file_writer.add_summary(session_end(status))
        writer.close()
        del self.writers[trial.trial_id]

    def on_experiment_end(self, trials, **info):
        for writer in self.writers.values():  # trials cut short by Ctrl-C
            writer.close()
        self.writers.clear()
