"""`bulkexport pull` into files, then DuckDB reading them where they lie
through the view `bulkexport schema --format duckdb` prints."""
import json
import subprocess

import duckdb

from server import BIN, Server


def test_pulled_files_are_read_by_duckdb_through_the_printed_view(tmp_path):
    server = Server(args=("--clock", "2026-01-20T00:00:00Z"))
    try:
        account = server.account("pull-suite")
        server.cli("seed", "--account", account["sid"], "--resource-type", "Calls",
                   "--start-day", "2026-01-05", "--end-day", "2026-01-06", "--per-day", "40")
        out = tmp_path / "exports"
        run = subprocess.run(
            [BIN, "pull", "--api-url", server.base, "--account-sid", account["sid"],
             "--resource-type", "Calls", "--start-day", "2026-01-05", "--end-day", "2026-01-07",
             "--out", str(out), "--poll-secs", "1", "--json", "--quiet"],
            env=dict(server.env, TWILIO_AUTH_TOKEN=account["auth_token"]),
            capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["days_downloaded"] == 3
        view = subprocess.run([BIN, "schema", "--resource-type", "Calls", "--format", "duckdb", "--dir", str(out)],
                              capture_output=True, text=True, check=True).stdout
        db = duckdb.connect()
        db.execute(view)
        rows = db.execute(
            "SELECT count(*), count(DISTINCT sid), min(date_created)::DATE, typeof(any_value(duration)), "
            "typeof(any_value(date_created)) FROM calls").fetchone()
        assert rows[0] == 80 and rows[1] == 80
        assert str(rows[2]) == "2026-01-05"
        assert rows[3] == "BIGINT" and rows[4] == "TIMESTAMP WITH TIME ZONE"
        # And on to Parquet, as DuckDB writes it.
        parquet = tmp_path / "calls.parquet"
        db.execute(f"COPY calls TO '{parquet}' (FORMAT parquet)")
        assert db.execute(f"SELECT count(*) FROM '{parquet}'").fetchone()[0] == 80
    finally:
        server.stop()
