//! Unit tests of window assignment against a brute-force reference.

use proptest::prelude::*;

use super::*;

/// Every window of the TVF containing `t`, found by scanning candidate starts one by one.
fn brute_force(tvf: &WindowTvf, t: i64) -> Vec<(i64, i64)> {
    let aligned = |start: i64, offset: i64, unit: i64| (start - offset).rem_euclid(unit) == 0;
    let mut windows = Vec::new();
    match *tvf {
        WindowTvf::Tumble { size, offset } => {
            for start in t - size + 1..=t {
                if aligned(start, offset, size) {
                    windows.push((start, start + size));
                }
            }
        }
        WindowTvf::Hop {
            slide,
            size,
            offset,
        } => {
            for start in (t - size + 1..=t).rev() {
                if aligned(start, offset, slide) {
                    windows.push((start, start + size));
                }
            }
        }
        WindowTvf::Cumulate {
            step,
            max_size,
            offset,
        } => {
            for start in t - max_size + 1..=t {
                if aligned(start, offset, max_size) {
                    for k in 1..=max_size / step {
                        if start + k * step > t {
                            windows.push((start, start + k * step));
                        }
                    }
                }
            }
        }
        WindowTvf::Session { gap } => windows.push((t, t + gap)),
    }
    windows
}

fn tvf() -> impl Strategy<Value = WindowTvf> {
    prop_oneof![
        (1i64..20, -30i64..30).prop_map(|(size, offset)| WindowTvf::Tumble { size, offset }),
        (1i64..8, 1i64..5, -30i64..30).prop_map(|(slide, k, offset)| WindowTvf::Hop {
            slide,
            size: slide * k,
            offset
        }),
        (1i64..8, 1i64..5, -30i64..30).prop_map(|(step, k, offset)| WindowTvf::Cumulate {
            step,
            max_size: step * k,
            offset
        }),
    ]
}

proptest! {
    #[test]
    fn assigned_windows_are_every_window_containing_the_time(tvf in tvf(), t in -200i64..200) {
        tvf.validate().unwrap();
        let mut windows = Vec::new();
        tvf.assign(t, &mut windows);
        prop_assert_eq!(&windows, &brute_force(&tvf, t));
        prop_assert!(windows.iter().all(|&(s, e)| s <= t && t < e));
        let first_end = windows.iter().map(|w| w.1).min().unwrap();
        prop_assert_eq!(tvf.first_end(t), first_end);
    }
}

#[test]
fn window_starts_are_right_for_negative_times() {
    let mut windows = Vec::new();
    WindowTvf::tumble(10).unwrap().assign(-1, &mut windows);
    assert_eq!(windows, [(-10, 0)]);
    windows.clear();
    WindowTvf::tumble(10)
        .unwrap()
        .with_offset(3)
        .assign(-8, &mut windows);
    assert_eq!(windows, [(-17, -7)]);
    windows.clear();
    WindowTvf::cumulate(2, 6).unwrap().assign(-3, &mut windows);
    assert_eq!(windows, [(-6, -2), (-6, 0)]);
}

#[test]
fn invalid_durations_are_refused_with_what_to_do() {
    let error = WindowTvf::hop(4, 10).unwrap_err();
    assert!(matches!(
        error,
        WindowError::NotAMultiple {
            size: 10,
            unit: 4,
            ..
        }
    ));
    assert!(error.to_string().contains("multiple of the slide"));
    assert!(matches!(
        WindowTvf::cumulate(3, 10),
        Err(WindowError::NotAMultiple { .. })
    ));
    assert!(matches!(
        WindowTvf::tumble(0),
        Err(WindowError::NonPositiveDuration { value: 0, .. })
    ));
    assert!(matches!(
        WindowTvf::session(-5),
        Err(WindowError::NonPositiveDuration { value: -5, .. })
    ));
    assert!(matches!(
        WindowTvf::hop(0, 10),
        Err(WindowError::NonPositiveDuration { .. })
    ));
}

#[test]
fn extreme_times_do_not_overflow() {
    for tvf in [
        WindowTvf::tumble(7).unwrap(),
        WindowTvf::hop(3, 9).unwrap(),
        WindowTvf::cumulate(3, 9).unwrap(),
        WindowTvf::session(5).unwrap(),
    ] {
        for t in [i64::MIN, i64::MIN + 1, i64::MAX - 1, i64::MAX] {
            let mut windows = Vec::new();
            tvf.assign(t, &mut windows);
            assert!(!windows.is_empty());
            let _ = tvf.first_end(t);
        }
    }
}
