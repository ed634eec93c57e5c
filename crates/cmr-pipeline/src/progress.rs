//! Progress of a run: one overall bar (stages done of those selected) and one bar per running stage, on stderr
//! (hidden with `quiet`; indicatif also hides them when stderr is not a terminal).

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bars of one run.
pub struct Bars {
    multi: MultiProgress,
    overall: ProgressBar,
}

impl Bars {
    /// An overall bar over `stages` stages.
    pub fn new(quiet: bool, stages: usize) -> Self {
        let target = if quiet { ProgressDrawTarget::hidden() } else { ProgressDrawTarget::stderr() };
        let multi = MultiProgress::with_draw_target(target);
        let overall = multi.add(ProgressBar::new(stages as u64));
        overall.set_style(style("{prefix:>10} [{bar:40}] {pos}/{len} stages {elapsed_precise} {msg}"));
        overall.set_prefix("pipeline");
        Self { multi, overall }
    }

    /// A bar for stage `name`, below the overall one.
    pub fn stage(&self, name: &str) -> ProgressBar {
        self.overall.set_message(name.to_string());
        let bar = self.multi.add(ProgressBar::new(0));
        bar.set_style(style("{prefix:>10} [{bar:40}] {pos}/{len} {elapsed_precise} (eta {eta}) {msg}"));
        bar.set_prefix(name.to_string());
        bar
    }

    /// Counts a stage as done (run or up to date), removing its bar.
    pub fn done(&self, bar: Option<ProgressBar>) {
        if let Some(bar) = bar {
            bar.finish_and_clear();
            self.multi.remove(&bar);
        }
        self.overall.inc(1);
    }

    /// Removes the overall bar at the end of the run.
    pub fn finish(&self) {
        self.overall.finish_and_clear();
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).expect("static template").progress_chars("=> ")
}
