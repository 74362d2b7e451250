//! The Nexmark benchmark's event generator as a replayable source of Arrow batches.
//!
//! The `nexmark` crate's generator is a pure function of the event number: every event's
//! random choices are seeded with its id, and its timestamp follows from the number and the
//! configured rate. That makes the source replayable without buffering anything: a position is
//! just the next event number of the split, and a restore regenerates from there.
//!
//! One [`NexmarkSource`] yields one stream ([`NexmarkStream::Person`], `Auction` or `Bid`) of
//! the first `events` events of the mix (person:auction:bid = 1:3:46 by default), so three
//! sources over the same count see the same persons, auctions and bids a single event stream
//! would. With `p` subtasks, subtask `i` reads the stream's events `i, i + p, i + 2p, ..`, so
//! every subtask advances through event time at the same pace and watermarks stay aligned.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use nexmark::EventGenerator;
pub use nexmark::config::NexmarkConfig;
use nexmark::event::{Event, EventType};
use serde::{Deserialize, Serialize};

use super::{Source, SourcePoll, SourceReader};
use crate::batch::arrow::ChangelogBatch;
use crate::error::BoxError;

/// 2024-01-01T00:00:00Z in epoch milliseconds: the default base time of the generator.
pub const NEXMARK_BASE_TIME_MS: u64 = 1_704_067_200_000;

/// The default first-event rate of the generator, in events per second (as Flink's suite).
pub const NEXMARK_FIRST_EVENT_RATE: usize = 10_000_000;

/// Why a Nexmark source cannot generate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NexmarkError {
    /// The configuration cannot produce events.
    #[error("the nexmark configuration is invalid: {reason}; fix the NexmarkConfig field named")]
    InvalidConfig {
        /// What is wrong, naming the field.
        reason: &'static str,
    },
    /// A split (e.g. a restored position) does not fit the source.
    #[error(
        "the nexmark split {split:?} does not fit a {stream:?} source of {count} events; restore with the same event count"
    )]
    SplitOutOfRange {
        /// The split.
        split: NexmarkSplit,
        /// The stream of the source.
        stream: NexmarkStream,
        /// How many events of the stream the source has.
        count: u64,
    },
    /// A generated batch does not assemble (an internal error).
    #[error("could not assemble a nexmark {stream:?} batch: {source}")]
    Arrow {
        /// The stream.
        stream: NexmarkStream,
        /// What Arrow said.
        #[source]
        source: arrow::error::ArrowError,
    },
}

/// One of Nexmark's three event streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum NexmarkStream {
    /// `person(id, name, email_address, credit_card, city, state, date_time, extra)`.
    Person,
    /// `auction(id, item_name, description, initial_bid, reserve, date_time, expires, seller,
    /// category, extra)`.
    Auction,
    /// `bid(auction, bidder, price, channel, url, date_time, extra)`.
    Bid,
}

impl NexmarkStream {
    /// All three streams, in the order person, auction, bid.
    pub const ALL: [NexmarkStream; 3] = [
        NexmarkStream::Person,
        NexmarkStream::Auction,
        NexmarkStream::Bid,
    ];

    /// The stream's name: `person`, `auction` or `bid`.
    pub fn name(self) -> &'static str {
        match self {
            NexmarkStream::Person => "person",
            NexmarkStream::Auction => "auction",
            NexmarkStream::Bid => "bid",
        }
    }

    /// The Arrow schema of the stream, columns in the standard Nexmark order; ids and prices are
    /// `Int64`, `date_time` and `expires` are `TIMESTAMP(3)`, and no column is nullable.
    ///
    /// ```
    /// use rivulet_runtime::source::NexmarkStream;
    /// assert_eq!(NexmarkStream::Bid.schema().field(5).name(), "date_time");
    /// ```
    pub fn schema(self) -> SchemaRef {
        let int = |n: &str| Field::new(n, DataType::Int64, false);
        let text = |n: &str| Field::new(n, DataType::Utf8, false);
        let time = |n: &str| Field::new(n, DataType::Timestamp(TimeUnit::Millisecond, None), false);
        let fields = match self {
            NexmarkStream::Person => vec![
                int("id"),
                text("name"),
                text("email_address"),
                text("credit_card"),
                text("city"),
                text("state"),
                time("date_time"),
                text("extra"),
            ],
            NexmarkStream::Auction => vec![
                int("id"),
                text("item_name"),
                text("description"),
                int("initial_bid"),
                int("reserve"),
                time("date_time"),
                time("expires"),
                int("seller"),
                int("category"),
                text("extra"),
            ],
            NexmarkStream::Bid => vec![
                int("auction"),
                int("bidder"),
                int("price"),
                text("channel"),
                text("url"),
                time("date_time"),
                text("extra"),
            ],
        };
        Arc::new(Schema::new(fields))
    }

    fn event_type(self) -> EventType {
        match self {
            NexmarkStream::Person => EventType::Person,
            NexmarkStream::Auction => EventType::Auction,
            NexmarkStream::Bid => EventType::Bid,
        }
    }
}

/// The generator configuration rivulet uses by default: the `nexmark` crate's defaults with a
/// fixed base time of 2024-01-01T00:00:00Z ([`NEXMARK_BASE_TIME_MS`]) and a constant rate of
/// 10 M events/s ([`NEXMARK_FIRST_EVENT_RATE`]), so every run sees the same events.
pub fn default_nexmark_config() -> NexmarkConfig {
    NexmarkConfig {
        base_time: NEXMARK_BASE_TIME_MS,
        first_rate: NEXMARK_FIRST_EVENT_RATE,
        next_rate: NEXMARK_FIRST_EVENT_RATE,
        ..NexmarkConfig::default()
    }
}

/// A part of a [`NexmarkSource`]: the stream's events `first, first + step, ..` below `end`
/// (counted within the stream), read up to `next`. `next` is the checkpointed position.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NexmarkSplit {
    /// The first event of the split, counted within the stream.
    pub first: u64,
    /// The distance between consecutive events of the split.
    pub step: u64,
    /// The next event to generate, counted within the stream.
    pub next: u64,
    /// One past the last event of the stream the source yields.
    pub end: u64,
}

/// A parallel, replayable source of one Nexmark stream over the first `events` events of the
/// generator, as insert-only Arrow batches of [`NexmarkStream::schema`].
///
/// ```
/// use rivulet_runtime::StreamEnv;
/// use rivulet_runtime::source::{NexmarkSource, NexmarkStream};
///
/// let env = StreamEnv::new().with_parallelism(2);
/// let bids = env.from_source(NexmarkSource::new(NexmarkStream::Bid, 1_000)).collect_table();
/// env.execute("bids").unwrap();
/// let rows: usize = bids.take().iter().map(|b| b.num_rows()).sum();
/// assert_eq!(rows, 920); // 46 of every 50 events are bids
/// ```
#[derive(Debug, Clone)]
pub struct NexmarkSource {
    stream: NexmarkStream,
    events: u64,
    config: Arc<NexmarkConfig>,
}

impl NexmarkSource {
    /// The `stream` events among the generator's first `events` events, with
    /// [`default_nexmark_config`].
    pub fn new(stream: NexmarkStream, events: u64) -> Self {
        NexmarkSource {
            stream,
            events,
            config: Arc::new(default_nexmark_config()),
        }
    }

    /// Replaces the generator configuration. Default: [`default_nexmark_config`].
    pub fn with_config(mut self, config: NexmarkConfig) -> Self {
        self.config = Arc::new(config);
        self
    }

    /// The stream this source yields.
    pub fn stream(&self) -> NexmarkStream {
        self.stream
    }

    /// How many events of the stream lie among the first `events` events of the mix.
    ///
    /// # Errors
    /// When the configuration's proportions are all zero.
    pub fn count(&self) -> Result<u64, NexmarkError> {
        check(&self.config)?;
        let c = &self.config;
        let (before, own) = match self.stream {
            NexmarkStream::Person => (0, c.person_proportion),
            NexmarkStream::Auction => (c.person_proportion, c.auction_proportion),
            NexmarkStream::Bid => (c.person_proportion + c.auction_proportion, c.bid_proportion),
        };
        let (before, own) = (before as u64, own as u64);
        let denominator = (c.person_proportion + c.auction_proportion + c.bid_proportion) as u64;
        let rest = self.events % denominator;
        Ok(self.events / denominator * own + rest.saturating_sub(before).min(own))
    }

    /// Generates the whole stream on the calling thread, as batches of up to `batch_size` rows
    /// (for replaying pre-generated input).
    ///
    /// # Errors
    /// An invalid configuration.
    pub fn generate_all(&self, batch_size: usize) -> Result<Vec<RecordBatch>, NexmarkError> {
        let split = NexmarkSplit {
            first: 0,
            step: 1,
            next: 0,
            end: self.count()?,
        };
        let mut reader = self.reader(split)?;
        let mut out = Vec::new();
        while reader.split.next < reader.split.end {
            out.push(reader.next_batch(batch_size.max(1))?);
        }
        Ok(out)
    }

    fn reader(&self, split: NexmarkSplit) -> Result<NexmarkReader, NexmarkError> {
        let count = self.count()?;
        if split.step == 0 || split.end != count || split.first >= split.step.max(1) {
            return Err(NexmarkError::SplitOutOfRange {
                split,
                stream: self.stream,
                count,
            });
        }
        Ok(NexmarkReader {
            stream: self.stream,
            schema: self.stream.schema(),
            generator: EventGenerator::new((*self.config).clone())
                .with_offset(split.next)
                .with_step(split.step)
                .with_type_filter(self.stream.event_type()),
            split,
        })
    }
}

fn check(config: &NexmarkConfig) -> Result<(), NexmarkError> {
    let invalid = |reason| Err(NexmarkError::InvalidConfig { reason });
    if config.person_proportion + config.auction_proportion + config.bid_proportion == 0 {
        return invalid("person_proportion, auction_proportion and bid_proportion are all 0");
    }
    if config.first_rate == 0 || config.next_rate == 0 {
        return invalid("first_rate and next_rate must be above 0");
    }
    if config.num_event_generators == 0 || config.out_of_order_group_size == 0 {
        return invalid("num_event_generators and out_of_order_group_size must be above 0");
    }
    Ok(())
}

impl Source for NexmarkSource {
    type Batch = ChangelogBatch;
    type Split = NexmarkSplit;
    type Reader = NexmarkReader;

    fn splits(&self, parallelism: usize) -> Result<Vec<NexmarkSplit>, BoxError> {
        let end = self.count()?;
        let step = parallelism.max(1) as u64;
        Ok((0..step)
            .map(|first| NexmarkSplit {
                first,
                step,
                next: first,
                end,
            })
            .collect())
    }

    fn create_reader(&self, split: NexmarkSplit) -> Result<NexmarkReader, BoxError> {
        Ok(self.reader(split)?)
    }

    fn name(&self) -> String {
        format!("Source: nexmark {}", self.stream.name())
    }
}

/// Reads one [`NexmarkSplit`] of a [`NexmarkSource`], generating straight into Arrow builders.
#[derive(Debug)]
pub struct NexmarkReader {
    stream: NexmarkStream,
    schema: SchemaRef,
    generator: EventGenerator,
    split: NexmarkSplit,
}

impl NexmarkReader {
    /// Generates the next batch of up to `max_records` rows; the split must not be exhausted.
    fn next_batch(&mut self, max_records: usize) -> Result<RecordBatch, NexmarkError> {
        let remaining = (self.split.end - self.split.next).div_ceil(self.split.step);
        let rows = remaining.min(max_records as u64) as usize;
        let columns = match self.stream {
            NexmarkStream::Person => self.persons(rows),
            NexmarkStream::Auction => self.auctions(rows),
            NexmarkStream::Bid => self.bids(rows),
        };
        self.split.next += rows as u64 * self.split.step;
        RecordBatch::try_new(self.schema.clone(), columns).map_err(|source| NexmarkError::Arrow {
            stream: self.stream,
            source,
        })
    }

    fn persons(&mut self, rows: usize) -> Vec<ArrayRef> {
        let mut id = Int64Builder::with_capacity(rows);
        let mut name = StringBuilder::with_capacity(rows, rows * 16);
        let mut email = StringBuilder::with_capacity(rows, rows * 16);
        let mut card = StringBuilder::with_capacity(rows, rows * 20);
        let mut city = StringBuilder::with_capacity(rows, rows * 10);
        let mut state = StringBuilder::with_capacity(rows, rows * 2);
        let mut time = TimestampMillisecondBuilder::with_capacity(rows);
        let mut extra = StringBuilder::with_capacity(rows, rows * 128);
        for event in self.generator.by_ref().take(rows) {
            if let Event::Person(p) = event {
                id.append_value(p.id as i64);
                name.append_value(&p.name);
                email.append_value(&p.email_address);
                card.append_value(&p.credit_card);
                city.append_value(&p.city);
                state.append_value(&p.state);
                time.append_value(p.date_time as i64);
                extra.append_value(&p.extra);
            }
        }
        vec![
            Arc::new(id.finish()),
            Arc::new(name.finish()),
            Arc::new(email.finish()),
            Arc::new(card.finish()),
            Arc::new(city.finish()),
            Arc::new(state.finish()),
            Arc::new(time.finish()),
            Arc::new(extra.finish()),
        ]
    }

    fn auctions(&mut self, rows: usize) -> Vec<ArrayRef> {
        let mut id = Int64Builder::with_capacity(rows);
        let mut item = StringBuilder::with_capacity(rows, rows * 16);
        let mut description = StringBuilder::with_capacity(rows, rows * 32);
        let mut initial_bid = Int64Builder::with_capacity(rows);
        let mut reserve = Int64Builder::with_capacity(rows);
        let mut time = TimestampMillisecondBuilder::with_capacity(rows);
        let mut expires = TimestampMillisecondBuilder::with_capacity(rows);
        let mut seller = Int64Builder::with_capacity(rows);
        let mut category = Int64Builder::with_capacity(rows);
        let mut extra = StringBuilder::with_capacity(rows, rows * 400);
        for event in self.generator.by_ref().take(rows) {
            if let Event::Auction(a) = event {
                id.append_value(a.id as i64);
                item.append_value(&a.item_name);
                description.append_value(&a.description);
                initial_bid.append_value(a.initial_bid as i64);
                reserve.append_value(a.reserve as i64);
                time.append_value(a.date_time as i64);
                expires.append_value(a.expires as i64);
                seller.append_value(a.seller as i64);
                category.append_value(a.category as i64);
                extra.append_value(&a.extra);
            }
        }
        vec![
            Arc::new(id.finish()),
            Arc::new(item.finish()),
            Arc::new(description.finish()),
            Arc::new(initial_bid.finish()),
            Arc::new(reserve.finish()),
            Arc::new(time.finish()),
            Arc::new(expires.finish()),
            Arc::new(seller.finish()),
            Arc::new(category.finish()),
            Arc::new(extra.finish()),
        ]
    }

    fn bids(&mut self, rows: usize) -> Vec<ArrayRef> {
        let mut auction = Int64Builder::with_capacity(rows);
        let mut bidder = Int64Builder::with_capacity(rows);
        let mut price = Int64Builder::with_capacity(rows);
        let mut channel = StringBuilder::with_capacity(rows, rows * 8);
        let mut url = StringBuilder::with_capacity(rows, rows * 48);
        let mut time = TimestampMillisecondBuilder::with_capacity(rows);
        let mut extra = StringBuilder::with_capacity(rows, rows * 32);
        for event in self.generator.by_ref().take(rows) {
            if let Event::Bid(b) = event {
                auction.append_value(b.auction as i64);
                bidder.append_value(b.bidder as i64);
                price.append_value(b.price as i64);
                channel.append_value(&b.channel);
                url.append_value(&b.url);
                time.append_value(b.date_time as i64);
                extra.append_value(&b.extra);
            }
        }
        vec![
            Arc::new(auction.finish()),
            Arc::new(bidder.finish()),
            Arc::new(price.finish()),
            Arc::new(channel.finish()),
            Arc::new(url.finish()),
            Arc::new(time.finish()),
            Arc::new(extra.finish()),
        ]
    }
}

impl SourceReader for NexmarkReader {
    type Batch = ChangelogBatch;
    type Split = NexmarkSplit;

    fn poll(&mut self, max_records: usize) -> Result<SourcePoll<ChangelogBatch>, BoxError> {
        if self.split.next >= self.split.end {
            return Ok(SourcePoll::Finished);
        }
        let batch = self.next_batch(max_records.max(1))?;
        Ok(SourcePoll::Ready(ChangelogBatch::insert_only(batch)))
    }

    fn snapshot(&self) -> NexmarkSplit {
        self.split
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Array, Int64Array, TimestampMillisecondArray};
    use proptest::prelude::*;

    use super::*;

    fn ints(batch: &RecordBatch, column: usize) -> Vec<i64> {
        let c = batch.column(column);
        if let Some(t) = c.as_any().downcast_ref::<TimestampMillisecondArray>() {
            return t.values().to_vec();
        }
        c.as_any()
            .downcast_ref::<Int64Array>()
            .expect("an Int64 column")
            .values()
            .to_vec()
    }

    /// The (id-like key, date_time) of every event of `stream` among the first `events`,
    /// straight from the unfiltered generator.
    fn reference(stream: NexmarkStream, events: u64) -> Vec<(i64, i64)> {
        EventGenerator::new(default_nexmark_config())
            .take(events as usize)
            .filter_map(|e| match (stream, e) {
                (NexmarkStream::Person, Event::Person(p)) => {
                    Some((p.id as i64, p.date_time as i64))
                }
                (NexmarkStream::Auction, Event::Auction(a)) => {
                    Some((a.id as i64, a.date_time as i64))
                }
                (NexmarkStream::Bid, Event::Bid(b)) => Some((b.auction as i64, b.date_time as i64)),
                _ => None,
            })
            .collect()
    }

    fn read_all(source: &NexmarkSource, parallelism: usize, batch: usize) -> Vec<(i64, i64)> {
        let time = match source.stream() {
            NexmarkStream::Person => 6,
            NexmarkStream::Auction => 5,
            NexmarkStream::Bid => 5,
        };
        let mut per_split = Vec::new();
        for split in source.splits(parallelism).unwrap() {
            let mut reader = source.create_reader(split).unwrap();
            let mut rows = Vec::new();
            while let SourcePoll::Ready(b) = reader.poll(batch).unwrap() {
                rows.extend(ints(b.data(), 0).into_iter().zip(ints(b.data(), time)));
            }
            per_split.push(rows);
        }
        // Interleave back: split i holds the stream's events i, i + p, ...
        let mut out = Vec::new();
        for k in 0.. {
            let mut any = false;
            for rows in &per_split {
                if let Some(r) = rows.get(k) {
                    out.push(*r);
                    any = true;
                }
            }
            if !any {
                break;
            }
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(24))]
        #[test]
        fn splits_yield_exactly_the_generators_events(
            events in 0u64..400,
            parallelism in 1usize..4,
            batch in 1usize..70,
            which in 0usize..3,
        ) {
            let stream = NexmarkStream::ALL[which];
            let source = NexmarkSource::new(stream, events);
            let expected = reference(stream, events);
            prop_assert_eq!(source.count().unwrap(), expected.len() as u64);
            prop_assert_eq!(read_all(&source, parallelism, batch), expected);
        }

        #[test]
        fn a_reader_resumes_from_its_snapshot(events in 1u64..600, cut in 0usize..20, batch in 1usize..40) {
            let source = NexmarkSource::new(NexmarkStream::Bid, events);
            let split = source.splits(1).unwrap()[0];
            let mut reader = source.create_reader(split).unwrap();
            let mut seen = Vec::new();
            for _ in 0..cut {
                if let SourcePoll::Ready(b) = reader.poll(batch).unwrap() {
                    seen.extend(ints(b.data(), 0));
                }
            }
            let mut resumed = source.create_reader(reader.snapshot()).unwrap();
            while let SourcePoll::Ready(b) = resumed.poll(batch).unwrap() {
                seen.extend(ints(b.data(), 0));
            }
            let expected: Vec<i64> = reference(NexmarkStream::Bid, events).into_iter().map(|r| r.0).collect();
            prop_assert_eq!(seen, expected);
        }
    }

    #[test]
    fn timestamps_start_at_the_base_time_and_advance_at_the_configured_rate() {
        let source = NexmarkSource::new(NexmarkStream::Bid, 1_000_000);
        let batches = source.generate_all(100_000).unwrap();
        let first = ints(&batches[0], 5)[0];
        let last = *ints(batches.last().unwrap(), 5).last().unwrap();
        assert_eq!(first, NEXMARK_BASE_TIME_MS as i64);
        // A million events at 10 M events/s span 100 ms of event time.
        assert!((99..=100).contains(&(last - first)), "{}", last - first);
        assert!(batches.iter().all(|b| b.column(6).null_count() == 0));
    }

    #[test]
    fn bad_configs_and_splits_are_errors_not_panics() {
        let config = NexmarkConfig {
            person_proportion: 0,
            auction_proportion: 0,
            bid_proportion: 0,
            ..default_nexmark_config()
        };
        let source = NexmarkSource::new(NexmarkStream::Bid, 10).with_config(config);
        assert!(source.splits(1).is_err());
        let source = NexmarkSource::new(NexmarkStream::Bid, 10);
        let bad = NexmarkSplit {
            first: 0,
            step: 0,
            next: 0,
            end: 10,
        };
        let err = source.create_reader(bad).unwrap_err().to_string();
        assert!(err.contains("restore with the same event count"), "{err}");
    }
}
