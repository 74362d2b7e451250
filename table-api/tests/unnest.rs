//! `unnest`: arrays and maps into rows.

use std::collections::BTreeMap;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use proptest::prelude::*;
use rivulet_table::prelude::*;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Post {
    id: i64,
    tags: Option<Vec<i64>>,
}

fn env(batch: bool, parallelism: usize) -> TableEnv {
    let stream = StreamEnv::new()
        .with_parallelism(parallelism)
        .with_batch_size(3);
    if batch {
        TableEnv::batch(stream)
    } else {
        TableEnv::streaming(stream)
    }
}

fn post() -> impl Strategy<Value = Post> {
    (
        0i64..6,
        proptest::option::weighted(0.8, prop::collection::vec(0i64..4, 0..4)),
    )
        .prop_map(|(id, tags)| Post { id, tags })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Unnesting then counting per tag equals counting the tags of the posts directly; the left
    /// variant also keeps each post without tags once.
    #[test]
    fn unnest_then_count_per_tag(
        posts in prop::collection::vec(post(), 0..20),
        batch in any::<bool>(),
        parallelism in 1usize..3,
    ) {
        let mut expected: BTreeMap<i64, i64> = BTreeMap::new();
        let mut empty = 0;
        for post in &posts {
            match &post.tags {
                Some(tags) if !tags.is_empty() => {
                    for tag in tags {
                        *expected.entry(*tag).or_default() += 1;
                    }
                }
                _ => empty += 1,
            }
        }
        let env = env(batch, parallelism);
        let table = env.from_records(posts).unwrap();
        let counts = table
            .unnest(col("tags"), ["tag"])
            .unwrap()
            .group_by([col("tag")])
            .select([col("tag"), count_star().alias("n")])
            .unwrap()
            .collect()
            .unwrap();
        let mut got = BTreeMap::new();
        for b in &counts {
            let tags = b.column(0).as_primitive::<Int64Type>();
            let ns = b.column(1).as_primitive::<Int64Type>();
            for i in 0..b.num_rows() {
                got.insert(tags.value(i), ns.value(i));
            }
        }
        prop_assert_eq!(got, expected.clone());
        let left = table
            .left_unnest(col("tags"), ["tag"])
            .unwrap()
            .filter(col("tag").is_null())
            .unwrap()
            .collect()
            .unwrap();
        prop_assert_eq!(left.iter().map(|b| b.num_rows()).sum::<usize>(), empty);
    }
}

#[test]
fn unnest_needs_an_array() {
    let env = env(true, 1);
    let table = env.from_records(vec![Post { id: 1, tags: None }]).unwrap();
    let err = table.unnest(col("id"), ["x"]).err().unwrap();
    assert!(
        err.to_string().contains("UNNEST takes an array or a map"),
        "{err}"
    );
    let default = table.unnest(col("tags"), []).unwrap();
    assert_eq!(default.schema().names(), vec!["id", "tags", "value"]);
}
