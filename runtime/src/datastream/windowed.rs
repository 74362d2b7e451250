//! Windowed streams: [`KeyedStream::window`] and [`DataStream::window_all`] group records into
//! windows, and `reduce`, `aggregate` or `process` compute one result per key and window.
//!
//! Late records (whose windows the watermark passed, beyond the allowed lateness) are dropped,
//! unless [`WindowedStream::side_output_late_data`] is called: its terminal functions then
//! return the late records as a second stream.

use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use super::{DataStream, KeyedStream, Stream};
use crate::batch::Data;
use crate::state::AggregateFunction;
use crate::window::function::{
    AggregateContents, AggregateWindowContents, ProcessContents, ReduceContents, WindowContents,
};
use crate::window::operator::{
    DropLate, KeySelector, LateData, SideOutputLate, WindowOperator, WindowOutput, WindowSpec,
};
use crate::window::{ProcessWindowFunction, Trigger, WindowAssigner, millis};

type TriggerFactory<W> = Arc<dyn Fn() -> Box<dyn Trigger<W>> + Send + Sync>;

/// A keyed stream grouped into windows, as Flink's `WindowedStream`. Made by
/// [`KeyedStream::window`] (or [`DataStream::window_all`]); finished by
/// [`reduce`](Self::reduce), [`aggregate`](Self::aggregate) or [`process`](Self::process).
///
/// ```
/// use std::time::Duration;
/// use rivulet_runtime::StreamEnv;
/// use rivulet_runtime::window::TumblingProcessingTimeWindows;
///
/// let env = StreamEnv::new().with_parallelism(2);
/// let totals = env
///     .from_vec(vec![("a".to_owned(), 1u64), ("b".to_owned(), 2), ("a".to_owned(), 3)])
///     .key_by(|(k, _)| k.clone())
///     .window(TumblingProcessingTimeWindows::of(Duration::from_secs(3600)))
///     .reduce(|x, y| (x.0, x.1 + y.1))
///     .collect();
/// env.execute("totals").unwrap();
/// // The input ends within an hour (or right at its end): one or two results per key.
/// let totals = totals.take();
/// assert_eq!(totals.iter().filter(|(k, _)| k == "a").map(|(_, n)| n).sum::<u64>(), 4);
/// ```
pub struct WindowedStream<T, K, A: WindowAssigner> {
    stream: DataStream<T>,
    key_of: Box<dyn KeySelector<T, K>>,
    assigner: A,
    trigger: TriggerFactory<A::Window>,
    allowed_lateness: i64,
    parallelism: Option<usize>,
    name: Option<String>,
    uid: Option<String>,
    /// Made by `window_all`: one subtask.
    all: bool,
}

impl<T, K, F> KeyedStream<T, K, F>
where
    T: Data,
    K: Data,
    F: Fn(&T) -> K + Clone + Send + 'static,
{
    /// Groups the stream into the windows `assigner` assigns each record, per key.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet_runtime::StreamEnv;
    /// use rivulet_runtime::window::EventTimeSessionWindows;
    ///
    /// let env = StreamEnv::new();
    /// let sessions = env
    ///     .from_vec(vec![(1u32, 1u64)])
    ///     .key_by(|(user, _)| *user)
    ///     .window(EventTimeSessionWindows::with_gap(Duration::from_secs(30)));
    /// ```
    pub fn window<A: WindowAssigner>(&self, assigner: A) -> WindowedStream<T, K, A> {
        let default = assigner.clone();
        WindowedStream {
            stream: self.stream.clone(),
            key_of: Box::new(self.key_of.clone()),
            assigner,
            trigger: Arc::new(move || default.default_trigger()),
            allowed_lateness: 0,
            parallelism: None,
            name: None,
            uid: None,
            all: false,
        }
    }
}

impl<T: Data> DataStream<T> {
    /// Groups the whole stream (not keyed) into windows, as Flink's `windowAll`: the window
    /// operator runs as a single subtask.
    ///
    /// ```
    /// use rivulet_runtime::StreamEnv;
    /// use rivulet_runtime::window::{CountTrigger, GlobalWindows};
    ///
    /// let env = StreamEnv::new().with_parallelism(2);
    /// let sums = env
    ///     .from_vec((1..=6u64).collect())
    ///     .window_all(GlobalWindows::create())
    ///     .trigger(CountTrigger::of(6))
    ///     .reduce(|a, b| a + b)
    ///     .collect();
    /// env.execute("sum of six").unwrap();
    /// assert_eq!(sums.take(), vec![21]);
    /// ```
    pub fn window_all<A: WindowAssigner>(&self, assigner: A) -> WindowedStream<T, (), A> {
        let mut windowed = self.key_by(|_: &T| ()).window(assigner);
        windowed.parallelism = Some(1);
        windowed.all = true;
        windowed
    }
}

fn results<O: Data, T: Data>(
    output: &DataStream<WindowOutput<O, T>>,
    parallelism: Option<usize>,
) -> DataStream<O> {
    let stream = output
        .flat_map(|o| match o {
            WindowOutput::Result(result) => Some(result),
            WindowOutput::Late(_) => None,
        })
        .name("Window results");
    match parallelism {
        Some(p) => stream.set_parallelism(p),
        None => stream,
    }
}

fn late_records<O: Data, T: Data>(
    output: &DataStream<WindowOutput<O, T>>,
    parallelism: Option<usize>,
) -> DataStream<T> {
    let stream = output
        .flat_map(|o| match o {
            WindowOutput::Result(_) => None,
            WindowOutput::Late(record) => Some(record),
        })
        .name("Late records");
    match parallelism {
        Some(p) => stream.set_parallelism(p),
        None => stream,
    }
}

impl<T: Data, K: Data, A: WindowAssigner> WindowedStream<T, K, A> {
    /// Replaces the assigner's default trigger (event time for event-time assigners, processing
    /// time for processing-time ones, never for global windows).
    pub fn trigger<G>(mut self, trigger: G) -> Self
    where
        G: Trigger<A::Window> + Clone + Sync,
    {
        self.trigger = Arc::new(move || Box::new(trigger.clone()));
        self
    }

    /// Keeps event-time windows for `lateness` after the watermark passed their end: a late
    /// record within it fires the window again with the updated result. Later records are late
    /// data. Default: zero.
    pub fn allowed_lateness(mut self, lateness: Duration) -> Self {
        self.allowed_lateness = millis(lateness);
        self
    }

    /// Names the window operator, as shown in job graphs, metrics and errors.
    ///
    /// Default: `Window(<assigner>, <function>)`.
    pub fn name(mut self, name: &str) -> Self {
        self.name = Some(name.to_owned());
        self
    }

    /// Gives the window operator a stable id: savepoints map its state (the window contents) to
    /// it. Set it here rather than on the result stream, which with late data side-output is
    /// produced by another operator.
    pub fn uid(mut self, uid: &str) -> Self {
        self.uid = Some(uid.to_owned());
        self
    }

    /// Sets the window operator's parallelism. Default: the environment's. Windows of
    /// [`DataStream::window_all`] always run as one subtask; this is ignored for them.
    pub fn set_parallelism(mut self, parallelism: usize) -> Self {
        if !self.all {
            self.parallelism = Some(parallelism);
        }
        self
    }

    /// Sends late records to a second output instead of dropping them: the terminal functions of
    /// the returned stream return `(results, late records)`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet_runtime::StreamEnv;
    /// use rivulet_runtime::window::TumblingEventTimeWindows;
    ///
    /// let env = StreamEnv::new();
    /// let (sums, late) = env
    ///     .from_vec(vec![(1u32, 1u64)])
    ///     .key_by(|(k, _)| *k)
    ///     .window(TumblingEventTimeWindows::of(Duration::from_secs(60)))
    ///     .side_output_late_data()
    ///     .reduce(|a, b| (a.0, a.1 + b.1));
    /// ```
    pub fn side_output_late_data(self) -> WindowedStreamWithLateData<T, K, A> {
        WindowedStreamWithLateData { windowed: self }
    }

    fn apply<C, L>(&self, function: &str, contents: C) -> Stream<L::Batch>
    where
        C: WindowContents<K, T, A::Window> + Clone,
        L: LateData<C::Out, T>,
    {
        let assigner = std::any::type_name::<A>().rsplit("::").next().unwrap_or("");
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("Window({assigner}, {function})"));
        let spec = WindowSpec {
            name: name.clone(),
            key_of: self.key_of.box_clone(),
            assigner: self.assigner.clone(),
            trigger: Arc::clone(&self.trigger),
            allowed_lateness: self.allowed_lateness,
        };
        let mut output = self.stream.transform(&name, move || {
            WindowOperator::<T, K, A, C, L>::new(spec.clone(), contents.clone())
        });
        if let Some(p) = self.parallelism {
            output = output.set_parallelism(p);
        }
        if let Some(uid) = &self.uid {
            output = output.uid(uid);
        }
        output
    }

    fn apply_with_late<C>(&self, function: &str, contents: C) -> (DataStream<C::Out>, DataStream<T>)
    where
        C: WindowContents<K, T, A::Window> + Clone,
    {
        let output = self.apply::<C, SideOutputLate>(function, contents);
        (
            results(&output, self.parallelism),
            late_records(&output, self.parallelism),
        )
    }

    /// Reduces the records of each key and window incrementally with `reduce`, and emits the
    /// reduction when the window fires.
    pub fn reduce<R>(&self, reduce: R) -> DataStream<T>
    where
        R: Fn(T, T) -> T + Clone + Send + 'static,
    {
        self.apply::<_, DropLate>("reduce", reduce_contents(reduce))
    }

    /// Aggregates the records of each key and window incrementally with `function` (one
    /// accumulator per key and window), and emits its result when the window fires.
    pub fn aggregate<G>(&self, function: G) -> DataStream<G::Out>
    where
        G: AggregateFunction<T> + Clone + Send + 'static,
        G::Out: Data,
    {
        self.apply::<_, DropLate>("aggregate", aggregate_contents(function))
    }

    /// Aggregates incrementally with `function` as [`aggregate`](Self::aggregate), then, when
    /// the window fires, calls `window_function` with the key, the window and the one-record
    /// list of the aggregate's result (Flink's `aggregate(aggregateFunction, windowFunction)`).
    ///
    /// ```
    /// use std::time::Duration;
    /// use rivulet_runtime::operator::keyed::Collector;
    /// use rivulet_runtime::state::AggregateFunction;
    /// use rivulet_runtime::window::{ProcessWindowFunction, TimeWindow, TumblingProcessingTimeWindows};
    /// use rivulet_runtime::{BoxError, StreamEnv};
    ///
    /// #[derive(Clone)]
    /// struct Count;
    /// impl AggregateFunction<u32> for Count {
    ///     type Acc = u64;
    ///     type Out = u64;
    ///     fn create_accumulator(&self) -> u64 { 0 }
    ///     fn add(&self, acc: &mut u64, _: u32) { *acc += 1 }
    ///     fn get_result(&self, acc: &u64) -> u64 { *acc }
    ///     fn merge(&self, acc: &mut u64, other: u64) { *acc += other }
    /// }
    ///
    /// /// Emits (key, window start, count).
    /// #[derive(Clone)]
    /// struct WithWindow;
    /// impl ProcessWindowFunction<u32, u64, TimeWindow> for WithWindow {
    ///     type Out = (u32, i64, u64);
    ///     fn process(&mut self, key: &u32, window: &TimeWindow, counts: Vec<u64>,
    ///                out: &mut Collector<'_, Self::Out>) -> Result<(), BoxError> {
    ///         out.collect((*key, window.start, counts[0]));
    ///         Ok(())
    ///     }
    /// }
    ///
    /// let env = StreamEnv::new().with_parallelism(1);
    /// let counts = env
    ///     .from_vec(vec![7u32, 7, 8])
    ///     .key_by(|k| *k)
    ///     .window(TumblingProcessingTimeWindows::of(Duration::from_secs(86_400)))
    ///     .aggregate_with_window(Count, WithWindow)
    ///     .collect();
    /// env.execute("counts").unwrap();
    /// let total: u64 = counts.take().iter().map(|c| c.2).sum();
    /// assert_eq!(total, 3);
    /// ```
    pub fn aggregate_with_window<G, P>(&self, function: G, window_function: P) -> DataStream<P::Out>
    where
        G: AggregateFunction<T> + Clone + Send + 'static,
        G::Out: Data,
        P: ProcessWindowFunction<K, G::Out, A::Window> + Clone,
    {
        let contents = AggregateWindowContents {
            aggregate: aggregate_contents(function),
            function: window_function,
        };
        self.apply::<_, DropLate>("aggregate", contents)
    }

    /// Keeps all records of each key and window and calls `function` with them, the key and
    /// the window when the window fires.
    pub fn process<P>(&self, function: P) -> DataStream<P::Out>
    where
        P: ProcessWindowFunction<K, T, A::Window> + Clone,
    {
        self.apply::<_, DropLate>("process", ProcessContents { function })
    }
}

fn reduce_contents<T, R>(reduce: R) -> ReduceContents<T, R> {
    ReduceContents {
        reduce,
        _types: PhantomData,
    }
}

fn aggregate_contents<T, G>(function: G) -> AggregateContents<T, G> {
    AggregateContents {
        function,
        _types: PhantomData,
    }
}

/// A [`WindowedStream`] whose late records go to a second output: every terminal function
/// returns `(results, late records)`. Made by [`WindowedStream::side_output_late_data`].
///
/// A record is late when the watermark passed `end - 1 + allowed lateness` of every window it
/// belongs to (Flink's `isWindowLate`); a late record reaches the second output and nothing
/// else.
pub struct WindowedStreamWithLateData<T, K, A: WindowAssigner> {
    windowed: WindowedStream<T, K, A>,
}

impl<T: Data, K: Data, A: WindowAssigner> WindowedStreamWithLateData<T, K, A> {
    /// As [`WindowedStream::reduce`], plus the late records.
    pub fn reduce<R>(&self, reduce: R) -> (DataStream<T>, DataStream<T>)
    where
        R: Fn(T, T) -> T + Clone + Send + 'static,
    {
        self.windowed
            .apply_with_late("reduce", reduce_contents(reduce))
    }

    /// As [`WindowedStream::aggregate`], plus the late records.
    pub fn aggregate<G>(&self, function: G) -> (DataStream<G::Out>, DataStream<T>)
    where
        G: AggregateFunction<T> + Clone + Send + 'static,
        G::Out: Data,
    {
        self.windowed
            .apply_with_late("aggregate", aggregate_contents(function))
    }

    /// As [`WindowedStream::aggregate_with_window`], plus the late records.
    pub fn aggregate_with_window<G, P>(
        &self,
        function: G,
        window_function: P,
    ) -> (DataStream<P::Out>, DataStream<T>)
    where
        G: AggregateFunction<T> + Clone + Send + 'static,
        G::Out: Data,
        P: ProcessWindowFunction<K, G::Out, A::Window> + Clone,
    {
        let contents = AggregateWindowContents {
            aggregate: aggregate_contents(function),
            function: window_function,
        };
        self.windowed.apply_with_late("aggregate", contents)
    }

    /// As [`WindowedStream::process`], plus the late records.
    pub fn process<P>(&self, function: P) -> (DataStream<P::Out>, DataStream<T>)
    where
        P: ProcessWindowFunction<K, T, A::Window> + Clone,
    {
        self.windowed
            .apply_with_late("process", ProcessContents { function })
    }
}
