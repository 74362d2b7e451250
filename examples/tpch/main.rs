//! The TPC-H runner: generates the tables with `tpchgen-arrow`, runs queries as Table API
//! pipelines in batch mode and prints their results and timings.
//!
//! ```text
//! cargo run --release --example tpch -- --sf 0.01 --query q4
//! cargo run --release --example tpch -- --sf 0.1 --query all --parallelism 2
//! cargo run --release --example tpch -- --sf 0.01 --write-parquet /tmp/tpch-0.01
//! ```
//!
//! `--streaming` runs the queries in streaming mode (the result is the consolidated changelog).
//! `--write-parquet DIR` writes each table as `DIR/<table>.parquet` (for other engines, e.g. the
//! script that computes the checked-in answers with DuckDB) and exits.

mod queries;

use std::error::Error;
use std::path::PathBuf;
use std::time::Instant;

use rivulet::table::prelude::*;

struct Args {
    sf: f64,
    query: String,
    parallelism: usize,
    write_parquet: Option<PathBuf>,
    print: bool,
    streaming: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        sf: 0.01,
        query: "all".into(),
        parallelism: 1,
        write_parquet: None,
        print: true,
        streaming: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--sf" => args.sf = value()?.parse().map_err(|e| format!("--sf: {e}"))?,
            "--query" => args.query = value()?,
            "--parallelism" => {
                args.parallelism = value()?
                    .parse()
                    .map_err(|e| format!("--parallelism: {e}"))?
            }
            "--write-parquet" => args.write_parquet = Some(value()?.into()),
            "--quiet" => args.print = false,
            "--streaming" => args.streaming = true,
            other => {
                return Err(format!(
                    "unknown flag {other}; use --sf F, --query qN|all, --parallelism P, --streaming, --write-parquet DIR, --quiet"
                ));
            }
        }
    }
    Ok(args)
}

fn write_parquet(dir: &PathBuf, tables: &[queries::TpchTable]) -> Result<(), Box<dyn Error>> {
    std::fs::create_dir_all(dir)?;
    for t in tables {
        let file = std::fs::File::create(dir.join(format!("{}.parquet", t.name)))?;
        let mut writer = parquet::arrow::ArrowWriter::try_new(file, t.schema.clone(), None)?;
        for batch in &t.batches {
            writer.write(batch)?;
        }
        writer.close()?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args = args()?;
    let started = Instant::now();
    let tables = queries::generate(args.sf, 8192);
    let rows: usize = tables
        .iter()
        .flat_map(|t| &t.batches)
        .map(|b| b.num_rows())
        .sum();
    println!(
        "generated TPC-H at scale factor {}: {rows} rows in {:.2?}",
        args.sf,
        started.elapsed()
    );
    if let Some(dir) = &args.write_parquet {
        write_parquet(dir, &tables)?;
        println!("wrote {} tables to {}", tables.len(), dir.display());
        return Ok(());
    }
    let selected: Vec<_> = queries::QUERIES
        .iter()
        .filter(|(name, _)| args.query == "all" || *name == args.query)
        .collect();
    if selected.is_empty() {
        let names: Vec<&str> = queries::QUERIES.iter().map(|(n, _)| *n).collect();
        return Err(format!("unknown query {:?}; the runner has {names:?}", args.query).into());
    }
    for (name, query) in selected {
        let stream = StreamEnv::new().with_parallelism(args.parallelism);
        let env = if args.streaming {
            TableEnv::streaming(stream)
        } else {
            TableEnv::batch(stream)
        };
        queries::register(&env, &tables)?;
        let table = query(&env)?;
        let started = Instant::now();
        let result = table.collect()?;
        let elapsed = started.elapsed();
        let out: usize = result.iter().map(|b| b.num_rows()).sum();
        println!("{name}: {out} rows in {elapsed:.2?}");
        if args.print {
            println!("{}", rivulet::runtime::sink::pretty_format(&result));
        }
    }
    Ok(())
}
