"""Running a stage's work: a tool of ``tools/`` in this process, or a
subprocess whose console output goes to its folder."""
import importlib.util
import os
import os.path as osp
import subprocess
import sys
from typing import Any, Dict, List, Optional

from branched_mtl.utils.errors import UserError
from branched_mtl.utils.io import open_append
from branched_mtl.utils.package import tools_dir
from branched_mtl.utils.proc import die_with_parent

# the checkout's tools/, or the installed package's .mim/tools
TOOLS = tools_dir()


def load_tool(name: str) -> Any:
    """Import ``tools/<name>.py`` so its ``main(argv)`` runs in-process."""
    spec = importlib.util.spec_from_file_location(
        f'branched_mtl_tool_{name}', osp.join(TOOLS, f'{name}.py'))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class LogFileOnly:
    """stdout of the in-process runners: their log lines are dropped from
    the console (the console shows one progress line per stage); each
    run's log file in its work dir keeps every line. Never closed, since
    mmengine's loggers keep the stream they were created with."""

    def write(self, text: str) -> int:
        return len(text)

    def flush(self) -> None:
        pass


def start_step(cmd: List[str], folder: str,
               env: Optional[Dict[str, str]] = None) -> subprocess.Popen:
    """Start a stage's subprocess with its console output in
    ``<folder>/console.log``; it is killed when this process dies."""
    os.makedirs(folder, exist_ok=True)
    with open_append(osp.join(folder, 'console.log'), binary=True) as out:
        # the child holds its own copy of the file: closing ours is safe
        return subprocess.Popen(cmd, env=env, stdout=out,
                                stderr=subprocess.STDOUT,
                                preexec_fn=die_with_parent)


def check_step(name: str, cmd: List[str], folder: str, code: int) -> None:
    """Stop the job on a failed step: its console log's last lines on
    stderr and an error that names the stage and its folder."""
    if code == 0:
        return
    log_path = osp.join(folder, 'console.log')
    with open(log_path, 'rb') as f:
        tail = f.read().decode(errors='replace').splitlines()[-30:]
    print('\n'.join(tail), file=sys.stderr)
    raise UserError(
        f'{name}: `{osp.basename(cmd[1]) if len(cmd) > 1 else cmd[0]}` '
        f'failed (exit {code}); the end of its output is above, all of '
        f'it in {log_path} and its logs in {folder}. Fix the cause and '
        'run the same command again: finished stages are kept and '
        'training resumes from its last checkpoint')


def run_step(name: str, cmd: List[str], folder: str,
             env: Optional[Dict[str, str]] = None) -> None:
    """Run a stage's subprocess to its end (:func:`start_step`); a failure
    is reported by :func:`check_step`."""
    proc = start_step(cmd, folder, env)
    try:
        code = proc.wait()
    except BaseException:
        # the step (a sweep and its workers) ends with this job
        proc.kill()
        proc.wait()
        raise
    check_step(name, cmd, folder, code)
