//! Time: processing-time clocks, event-time watermarks and their strategies, and timers.
//!
//! Event-time timestamps and watermarks are `i64` milliseconds. A watermark `w` promises that no
//! record with a timestamp at or below `w` follows; an operator's watermark is the minimum over its
//! inputs, and an idle input does not hold it back.

mod clock;
mod timers;
mod watermark;

pub use clock::{Clock, ManualClock, SystemClock};
pub use timers::TimeDomain;
pub(crate) use timers::{TimerKey, Timers};
pub(crate) use watermark::{BatchWatermarks, WatermarkTracker, WatermarkUpdate};
pub use watermark::{BoundedOutOfOrderness, WatermarkGenerator, WatermarkStrategy};
