//! Progress bars for long work (indicatif), hidden with `--quiet` or when stderr is not a terminal.

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Creates progress bars for stages.
pub struct Progress {
    hidden: bool,
}

impl Progress {
    /// `quiet` hides every bar.
    pub fn new(quiet: bool) -> Self {
        Self { hidden: quiet }
    }

    /// A bar labelled `what`; update it through the returned callback `(done, total)`.
    pub fn bar(&self, what: &str) -> ProgressBar {
        let bar = ProgressBar::with_draw_target(Some(0), self.target());
        bar.set_style(
            ProgressStyle::with_template("{prefix:>10} [{bar:40}] {pos}/{len} {elapsed_precise} (eta {eta}) {msg}")
                .expect("static template")
                .progress_chars("=> "),
        );
        bar.set_prefix(what.to_string());
        bar
    }

    fn target(&self) -> ProgressDrawTarget {
        if self.hidden {
            ProgressDrawTarget::hidden()
        } else {
            ProgressDrawTarget::stderr()
        }
    }
}

/// Adapts a bar to the libraries' `(done, total)` progress callback.
pub fn callback(bar: &ProgressBar) -> impl Fn(usize, usize) + Sync + '_ {
    move |done, total| {
        bar.set_length(total as u64);
        bar.set_position(done as u64);
    }
}
