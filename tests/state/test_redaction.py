"""The store imports nothing of ours, yet keeps no secret: importing ``worker`` installs the scrubber."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[2]


def test_given_a_fresh_process_when_worker_is_imported_then_store_errors_and_rows_are_scrubbed(tmp_path: Path) -> None:
    code = (
        "from connectors.secrets import remember\n"
        "from state.store import Store, StoreError\n"
        "import worker\n"
        "remember('sk_live_distinctive_123')\n"
        "print(StoreError('refused sk_live_distinctive_123 at the door'))\n"
        f"store = Store('sqlite:///{tmp_path / 'state.db'}')\n"
        "run = store.start_run('p', kind='run')\n"
        "store.finish_run(run, status='failed', counts={}, error='token sk_live_distinctive_123 refused')\n"
        "print(store.runs('p')[0].error)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=False)

    assert done.returncode == 0, done.stderr[-2000:]
    assert "sk_live_distinctive_123" not in done.stdout
    assert done.stdout.splitlines() == ["refused *** at the door", "token *** refused"]
