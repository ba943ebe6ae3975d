"""Reliability rows: the command line (issue 17) — typos, wrong values, a broken experiment file,
an unwritable output root. Each fails fast (no training), prints one ``error:`` line and leaves
no run directory behind.

Not a row: a full disk mid-run. The table's harness cannot give a process a small disk or a
file size limit; tests/trainer/test_cli_errors.py does (a real ENOSPC on a namespaced tmpfs where
the machine allows it, and always EFBIG through RLIMIT_FSIZE).
"""
from __future__ import annotations

import subprocess
from pathlib import Path

from tests.reliability.case import SMALL, Case, run_dirs


def no_run_dir(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    assert run_dirs(tmp) == [], f"a failed command left {run_dirs(tmp)}"


def nothing_written(tmp: Path, proc: subprocess.CompletedProcess) -> None:
    assert not (tmp / "out").exists(), "a command rejected while composing wrote under the output root"


def _experiment(text: str) -> object:
    def setup(tmp: Path) -> None:
        (tmp / "cfg" / "experiment").mkdir(parents=True)
        (tmp / "cfg" / "experiment" / "mine.yaml").write_text(text)
    return setup


def _a_file(tmp: Path) -> None:
    (tmp / "afile").write_text("not a directory")


STRUCT = "7-line Hydra struct error advising to append the typo with +, exit 1"
LEFT_DIR = "same line, but left a run dir holding only Hydra's log"

CASES: list[Case] = [
    Case("cli_typo_trainer", [*SMALL, "trainer.epochz=3"], check=nothing_written, before=STRUCT,
         message=r"^error: trainer\.epochz: unknown key; did you mean trainer\.epochs\?$"),
    Case("cli_typo_data", [*SMALL, "data.batch_sise=64"], check=nothing_written, before=STRUCT,
         message=r"^error: data\.batch_sise: unknown key; did you mean data\.batch_size"),
    Case("cli_typo_model", [*SMALL, "model.hiden_units=[8]"], check=nothing_written, before=STRUCT,
         message=r"^error: model\.hiden_units: unknown key; did you mean model\.hidden_units\?$"),
    Case("cli_typo_feature", [*SMALL, "features.user_id.embeding_dim=8"], check=nothing_written, before=STRUCT,
         message=r"^error: features\.user_id\.embeding_dim: unknown key; did you mean "
                 r"features\.user_id\.embedding_dim"),
    Case("cli_typo_root", [*SMALL, "experiment_nam=x"], check=nothing_written, before=STRUCT,
         message=r"^error: experiment_nam: unknown key; did you mean experiment_name\?$"),
    Case("cli_new_key_in_free_form_mapping", [*SMALL, "data.storage_options.anon=true"], check=nothing_written,
         before=STRUCT, message=r"to add it, write \+data\.storage_options\.anon=true"),
    Case("cli_plus_typo", [*SMALL, "+trainer.epochz=3"], check=no_run_dir, before=LEFT_DIR,
         message=r"config error at 'trainer\.epochz': unknown key \(did you mean: epochs\?\)"),
    Case("cli_plus_plus_typo", [*SMALL, "++trainer.epochz=3"], check=no_run_dir, before=LEFT_DIR,
         message=r"config error at 'trainer\.epochz': unknown key \(did you mean: epochs\?\)"),
    Case("cli_wrong_type", [*SMALL, "trainer.epochs=abc"], check=no_run_dir, before=LEFT_DIR,
         message=r"'trainer\.epochs': expected an integer, got 'abc'"),
    Case("cli_epochs_out_of_range", [*SMALL, "trainer.epochs=-1"], check=no_run_dir, before=LEFT_DIR,
         message=r"'trainer\.epochs': must be >= 1, got -1"),
    Case("cli_batch_size_out_of_range", [*SMALL, "data.batch_size=0"], check=no_run_dir, before=LEFT_DIR,
         message=r"'data\.batch_size': must be >= 1, got 0"),
    Case("cli_unknown_experiment", ["+experiment=movielens_deepfn"], check=nothing_written,
         before="Hydra's 'Could not find' with the option list and search path (~20 lines), exit 1",
         message=r"^error: experiment=movielens_deepfn: no such experiment config; did you mean "
                 r"experiment=movielens_deepfm\b"),
    Case("cli_unknown_model", [*SMALL, "model=deepfn"], check=nothing_written,
         before="Hydra's 'Could not find' with the option list and search path (~20 lines), exit 1",
         message=r"^error: model=deepfn: no such model config; did you mean model=deepfm\?"),
    Case("cli_bad_override_syntax", [*SMALL, "trainer.epochs=[1,"], check=nothing_written,
         before="3-line Hydra parse error, exit 1",
         message=r"^error: bad override 'trainer\.epochs=\[1,': no viable alternative at input '\[1,'"),
    Case("cli_yaml_tab_in_experiment", ["--config-dir={tmp}/cfg", "+experiment=mine"], check=nothing_written,
         setup=_experiment("# @package _global_\ntrainer:\n  epochs: 2\n\tprogress_bar: false\n"),
         before="95-line traceback from the YAML scanner, exit 1",
         message=r"^error: \S+/cfg/experiment/mine\.yaml:4:1: found character '\\t' that cannot start any token"),
    Case("cli_yaml_bad_indent_in_experiment", ["--config-dir={tmp}/cfg", "+experiment=mine"], check=nothing_written,
         setup=_experiment("# @package _global_\ntrainer:\n    epochs: 2\n  progress_bar: false\n"),
         before="95-line traceback from the YAML parser, exit 1",
         message=r"^error: \S+/cfg/experiment/mine\.yaml:4:\d+: "),
    Case("cli_interpolation_names_no_key", [*SMALL, "trainer.epochs=${oops}"], check=no_run_dir,
         before="4-line OmegaConf error (full_key, object_type lines), left a run dir",
         message=r"^error: config error at 'trainer\.epochs': Interpolation key 'oops' not found$"),
    Case("cli_plus_on_an_existing_key", [*SMALL, "+trainer.progress_bar=false"], check=nothing_written,
         before="2-line Hydra error, exit 1",
         message=r"^error: Could not append to config\. An item is already at 'trainer\.progress_bar'\. "
                 r"Either remove \+ prefix"),
    Case("cli_hydra_key_typo", [*SMALL, "hydra.job.chdirr=true"], check=nothing_written,
         before="7-line Hydra error advising +hydra.job.chdirr=true, exit 1",
         message=r"^error: hydra\.job\.chdirr: unknown key; did you mean hydra\.job\.chdir\?$"),
    Case("cli_sweeper_knob_typo", ["-m", *SMALL, "hparams_search=movielens_deepfm", "hydra.sweeper.n_trialz=3"],
         check=nothing_written, before="7-line Hydra error advising +hydra.sweeper.n_trialz=3, exit 1",
         message=r"^error: hydra\.sweeper\.n_trialz: unknown key; did you mean hydra\.sweeper\.n_trials\?$"),
    Case("cli_missing_data_file", [*SMALL, "data.dataset=null", "data.train_path={tmp}/nope.parquet"],
         before="same", message=r"nope\.parquet"),
    Case("cli_output_root_is_a_file", [*SMALL, "paths.output_root={tmp}/afile/out"], setup=_a_file,
         before="traceback (NotADirectoryError from Hydra's mkdir), exit 1",
         message=r"^error: cannot write \S+/afile/out\S*: Not a directory \(a part of the path is a file"),
    # /proc takes no new directory, as root too (a chmod 0o500 directory does not stop root)
    Case("cli_output_root_unwritable", [*SMALL, "paths.output_root=/proc/lingjie_out"],
         before="traceback (FileNotFoundError from Hydra's mkdir), exit 1",
         message=r"^error: cannot write /proc/lingjie_out: No such file or directory \(set paths\.output_root"),
]
