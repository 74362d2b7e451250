"""Computes the TPC-H answers the tests compare against, with DuckDB, on the very data the
rivulet runner generates.

    pip install duckdb
    python3 scripts/tpch_answers.py [scale factor, default 0.01]

It runs `cargo run --release --example tpch -- --sf SF --write-parquet DIR`, loads the Parquet
files into DuckDB, runs each query of tests/tpch/queries/ and writes its rows as CSV (with a
header) to tests/tpch/answers/sf<SF>/<query>.csv. Not part of CI: the answers are checked in.
"""

import csv
import pathlib
import subprocess
import sys
import tempfile

import duckdb

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main() -> None:
    sf = sys.argv[1] if len(sys.argv) > 1 else "0.01"
    queries = sorted((ROOT / "tests" / "tpch" / "queries").glob("q*.sql"))
    out_dir = ROOT / "tests" / "tpch" / "answers" / f"sf{sf}"
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as data:
        subprocess.run(
            ["cargo", "run", "--release", "--example", "tpch", "--",
             "--sf", sf, "--write-parquet", data],
            cwd=ROOT, check=True,
        )
        db = duckdb.connect()
        for table in pathlib.Path(data).glob("*.parquet"):
            db.execute(f"CREATE TABLE {table.stem} AS SELECT * FROM read_parquet('{table}')")
        for query in queries:
            result = db.execute(query.read_text())
            names = [d[0] for d in result.description]
            rows = result.fetchall()
            with open(out_dir / f"{query.stem}.csv", "w", newline="") as f:
                writer = csv.writer(f)
                writer.writerow(names)
                for row in rows:
                    writer.writerow(["" if v is None else v for v in row])
            print(f"{query.stem}: {len(rows)} rows")


if __name__ == "__main__":
    main()
