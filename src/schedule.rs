//! Schedules: cron expressions in UTC (parsed once, when the configuration is checked)
//! and the one loop that sleeps until the next occurrence and runs a job, until the
//! stop signal. The backup and cleanup schedulers are this loop with their own job.

use std::future::Future;
use std::time::Duration;

use time::OffsetDateTime;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// A schedule: cron in UTC, 5 fields or 6 with seconds first; empty means none.
pub fn parse_cron(schedule: &str) -> Result<Option<croner::Cron>, String> {
    if schedule.trim().is_empty() {
        return Ok(None);
    }
    croner::parser::CronParser::builder()
        .seconds(croner::parser::Seconds::Optional)
        .build()
        .parse(schedule)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The first time `cron` fires after `after`.
pub fn next_occurrence(
    cron: &croner::Cron,
    after: time::OffsetDateTime,
) -> Option<time::OffsetDateTime> {
    let after = chrono::DateTime::<chrono::Utc>::from_timestamp(
        after.unix_timestamp(),
        after.nanosecond(),
    )?;
    let next = cron.find_next_occurrence(&after, false).ok()?;
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(next.timestamp_nanos_opt()?)).ok()
}

/// Run `job` each time `cron` fires, until the stop signal. A job that runs past the
/// next occurrence delays it (runs never overlap); a stop during the wait ends the loop
/// at once, a stop during a job after it.
pub fn spawn<F, Fut>(
    cron: croner::Cron,
    mut stop: watch::Receiver<bool>,
    mut job: F,
) -> JoinHandle<()>
where
    F: FnMut() -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    tokio::spawn(async move {
        loop {
            let now = OffsetDateTime::now_utc();
            let Some(next) = next_occurrence(&cron, now) else {
                break;
            };
            let wait = Duration::try_from(next - now).unwrap_or(Duration::ZERO);
            tokio::select! {
                () = crate::shutdown::stopped(&mut stop) => break,
                () = tokio::time::sleep(wait) => {}
            }
            if *stop.borrow() {
                break;
            }
            job().await;
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn cron_forms_and_the_next_occurrence() {
        assert!(parse_cron("  ").unwrap().is_none());
        assert!(parse_cron("not cron").is_err());
        let every_minute = parse_cron("0 * * * *").unwrap().unwrap();
        let at = OffsetDateTime::from_unix_timestamp(1_700_000_010).unwrap();
        let next = next_occurrence(&every_minute, at).unwrap();
        assert_eq!(next.unix_timestamp(), 1_700_002_800);
        let with_seconds = parse_cron("*/2 * * * * *").unwrap().unwrap();
        assert_eq!(
            next_occurrence(&with_seconds, at).unwrap().unix_timestamp(),
            1_700_000_012
        );
    }

    #[tokio::test]
    async fn the_loop_runs_the_job_each_time_and_ends_at_the_stop_signal() {
        let runs = Arc::new(AtomicUsize::new(0));
        let (tx, rx) = watch::channel(false);
        let counted = runs.clone();
        let every_second = parse_cron("* * * * * *").unwrap().unwrap();
        let task = spawn(every_second, rx, move || {
            let counted = counted.clone();
            async move {
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while runs.load(Ordering::SeqCst) < 2 {
            assert!(
                std::time::Instant::now() < deadline,
                "the job ran {} times",
                runs.load(Ordering::SeqCst)
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .expect("the loop ends at the stop signal")
            .unwrap();
    }
}
