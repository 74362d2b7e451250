//! Word count on the DataStream API.
//!
//! Generates a deterministic text, splits it into words, and counts them with a keyed rolling
//! sum: once with parallelism 1 and once with parallelism 4. Both runs print the same counts,
//! followed by the job graph of the parallel run (its operator chains and exchanges).
//!
//! Run it with `cargo run --release --example 02_word_count`.

use std::collections::BTreeMap;

use rivulet::prelude::*;

const VOCABULARY: &[&str] = &[
    "stream",
    "table",
    "window",
    "state",
    "key",
    "time",
    "watermark",
    "barrier",
    "operator",
    "chain",
    "batch",
    "record",
];

/// Line `i` of the generated text: eight words picked by a fixed-seed mixing function.
fn line(i: u64) -> String {
    (0..8u64)
        .map(|w| {
            let mut x = (i * 8 + w).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^= x >> 29;
            VOCABULARY[(x % VOCABULARY.len() as u64) as usize]
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Counts the words of `lines` generated lines at `parallelism`; returns the final counts.
fn word_count(
    lines: u64,
    parallelism: usize,
) -> Result<(BTreeMap<String, u64>, JobGraph, JobResult), JobError> {
    let env = StreamEnv::new().with_parallelism(parallelism);
    let counts = env
        .from_generator(lines, line)
        .name("Source: text")
        .flat_map(|line: String| {
            line.split_whitespace()
                .map(|w| (w.to_owned(), 1u64))
                .collect::<Vec<_>>()
        })
        .name("Tokenize")
        .key_by(|(word, _)| word.clone())
        .sum(|(_, count)| count)
        .name("Count")
        .collect();
    let graph = env.job_graph("word count")?;
    let result = env.execute("word count")?;
    // The rolling sum emits every intermediate count; the largest per word is the final one.
    let mut finals = BTreeMap::new();
    for (word, count) in counts.take() {
        let entry = finals.entry(word).or_insert(0);
        *entry = count.max(*entry);
    }
    Ok((finals, graph, result))
}

fn main() -> Result<(), JobError> {
    let lines = 200_000;
    let (sequential, _, seq_result) = word_count(lines, 1)?;
    let (parallel, graph, par_result) = word_count(lines, 4)?;

    println!("word counts over {} generated words:", lines * 8);
    println!(
        "{:<12} {:>14} {:>14}",
        "word", "parallelism 1", "parallelism 4"
    );
    for (word, count) in &sequential {
        println!(
            "{word:<12} {count:>14} {:>14}",
            parallel.get(word).copied().unwrap_or(0)
        );
    }
    println!();
    println!(
        "same counts at parallelism 1 and 4: {}",
        if sequential == parallel { "yes" } else { "NO" }
    );
    println!(
        "parallelism 1 took {:.3?}, parallelism 4 took {:.3?}",
        seq_result.duration, par_result.duration
    );
    println!();
    print!("{graph}");
    println!();
    print!("{par_result}");
    if sequential != parallel {
        std::process::exit(1);
    }
    Ok(())
}
