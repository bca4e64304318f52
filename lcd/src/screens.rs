//! The front-panel pages, rendered to fixed-width lines for a 16x2 or 20x4 display.
//!
//! Every page is designed for 16 columns and 2 rows first (the smallest panel we support);
//! on a 20x4 panel the extra rows carry secondary information (key hints, details). Text that
//! does not fit is cut, never wrapped into a row that belongs to something else.

use core::fmt::{self, Write};

use gmhsm_platform::{DisplayError, TextDisplay};

/// Largest supported panel.
pub const MAX_COLS: usize = 20;
pub const MAX_ROWS: usize = 4;

/// The appliance's state as shown on the status page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceState {
    /// Factory-fresh: waiting for the init ceremony.
    Uninitialized,
    /// Initialized, no administrator logged in; serving applications.
    Ready,
    /// An administrator quorum is logged in.
    AdminLoggedIn,
    /// Self-test or entropy failure: refusing crypto requests.
    Error,
    /// Enclosure opened: keys zeroized.
    Tampered,
}

impl DeviceState {
    fn label(self) -> &'static str {
        match self {
            DeviceState::Uninitialized => "UNINITIALIZED",
            DeviceState::Ready => "READY",
            DeviceState::AdminLoggedIn => "ADMIN LOGGED IN",
            DeviceState::Error => "ERROR",
            DeviceState::Tampered => "TAMPERED",
        }
    }
}

/// A ceremony prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Prompt {
    /// "Insert admin card n of k".
    InsertCard {
        n: u8,
        of: u8,
    },
    /// PIN entry with `entered` digits typed so far (shown as stars).
    EnterPin {
        entered: u8,
    },
    WrongPin {
        retries_left: u8,
    },
    CardLocked,
    RemoveCard,
    /// The card or the crypto card is working.
    Working,
    Done,
    Cancelled,
}

/// One page of the front panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Page<'a> {
    /// Power-up self-test progress: `step` is the test running, `done` of `total` finished.
    Boot {
        step: &'a str,
        done: u8,
        total: u8,
    },
    /// Device state and the private link's address.
    Status {
        state: DeviceState,
        link: &'a str,
    },
    /// Sessions and load.
    Load {
        sessions: u32,
        load_percent: u8,
    },
    /// An alarm that needs attention.
    Alarm {
        text: &'a str,
    },
    Prompt(Prompt),
}

/// A rendered page: `rows` lines of exactly `cols` ASCII cells.
#[derive(Clone, PartialEq, Eq)]
pub struct Frame {
    cols: u8,
    rows: u8,
    cells: [[u8; MAX_COLS]; MAX_ROWS],
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries((0..self.rows).map(|r| self.line(r))).finish()
    }
}

/// Writes formatted text into one row, cutting at the width.
struct RowWriter<'a> {
    row: &'a mut [u8],
    pos: usize,
}

impl Write for RowWriter<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        for c in s.chars() {
            if self.pos >= self.row.len() {
                break;
            }
            self.row[self.pos] = if (' '..='~').contains(&c) { c as u8 } else { b'?' };
            self.pos += 1;
        }
        Ok(())
    }
}

impl Frame {
    /// A blank frame; `cols` and `rows` are clamped to 1..=20 and 1..=4.
    pub fn new(cols: u8, rows: u8) -> Frame {
        Frame {
            cols: cols.clamp(1, MAX_COLS as u8),
            rows: rows.clamp(1, MAX_ROWS as u8),
            cells: [[b' '; MAX_COLS]; MAX_ROWS],
        }
    }

    pub fn rows(&self) -> u8 {
        self.rows
    }

    pub fn cols(&self) -> u8 {
        self.cols
    }

    /// Row `row` as text of exactly `cols` characters ("" if out of range).
    pub fn line(&self, row: u8) -> &str {
        if row >= self.rows {
            return "";
        }
        // Only printable ASCII is ever stored, so this cannot fail.
        core::str::from_utf8(&self.cells[usize::from(row)][..usize::from(self.cols)]).unwrap_or("")
    }

    /// Set row `row` from formatted text (cut at the width). Rows past the panel are ignored.
    pub fn set(&mut self, row: u8, args: fmt::Arguments<'_>) {
        if row >= self.rows {
            return;
        }
        let cols = usize::from(self.cols);
        let line = &mut self.cells[usize::from(row)][..cols];
        line.fill(b' ');
        let _ = RowWriter { row: line, pos: 0 }.write_fmt(args);
    }

    /// Set row `row`, centred.
    pub fn center(&mut self, row: u8, text: &str) {
        let len = text.chars().count().min(usize::from(self.cols));
        let pad = (usize::from(self.cols) - len) / 2;
        self.set(row, format_args!("{:pad$}{text}", ""));
    }

    /// Write every row to `display`.
    pub fn show<D: TextDisplay + ?Sized>(&self, display: &mut D) -> Result<(), DisplayError> {
        for r in 0..self.rows.min(display.rows()) {
            display.write_line(r, self.line(r))?;
        }
        Ok(())
    }
}

/// Render `page` for a `cols` x `rows` panel.
pub fn render(page: &Page<'_>, cols: u8, rows: u8) -> Frame {
    let mut f = Frame::new(cols, rows);
    let w = usize::from(f.cols);
    match *page {
        Page::Boot { step, done, total } => {
            f.set(0, format_args!("Self-test {done}/{total}"));
            f.set(1, format_args!("{step}"));
            // Progress bar on the 20x4 panel.
            let inner = w.saturating_sub(2);
            let filled = if total == 0 { 0 } else { inner * usize::from(done.min(total)) / usize::from(total) };
            f.set(2, format_args!("[{:#<filled$}{:inner2$}]", "", "", inner2 = inner - filled));
            f.set(3, format_args!("gmhsm starting"));
        }
        Page::Status { state, link } => {
            f.set(0, format_args!("{}", state.label()));
            f.set(1, format_args!("{link}"));
            f.set(3, format_args!("MENU for more"));
        }
        Page::Load { sessions, load_percent } => {
            f.set(0, format_args!("Sessions {sessions}"));
            f.set(1, format_args!("Load {}%", load_percent.min(100)));
        }
        Page::Alarm { text } => {
            f.set(0, format_args!("!! ALARM !!"));
            f.set(1, format_args!("{text}"));
            f.set(3, format_args!("OK to acknowledge"));
        }
        Page::Prompt(p) => render_prompt(&mut f, p),
    }
    f
}

fn render_prompt(f: &mut Frame, p: Prompt) {
    match p {
        Prompt::InsertCard { n, of } => {
            f.set(0, format_args!("Insert admin"));
            f.set(1, format_args!("card {n} of {of}"));
            f.set(3, format_args!("CANCEL to abort"));
        }
        Prompt::EnterPin { entered } => {
            let stars = usize::from(entered).min(usize::from(f.cols).saturating_sub(5));
            f.set(0, format_args!("Enter PIN"));
            f.set(1, format_args!("PIN: {:*<stars$}", ""));
            f.set(3, format_args!("OK=done C=cancel"));
        }
        Prompt::WrongPin { retries_left } => {
            f.set(0, format_args!("Wrong PIN"));
            f.set(1, format_args!("{retries_left} tries left"));
        }
        Prompt::CardLocked => {
            f.set(0, format_args!("Card locked"));
            f.set(1, format_args!("Needs unblock"));
            f.set(3, format_args!("Remove card"));
        }
        Prompt::RemoveCard => f.set(0, format_args!("Remove card")),
        Prompt::Working => f.set(0, format_args!("Working...")),
        Prompt::Done => f.set(0, format_args!("Done")),
        Prompt::Cancelled => f.set(0, format_args!("Cancelled")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_fit_both_panels() {
        let f = render(&Page::Prompt(Prompt::InsertCard { n: 2, of: 3 }), 16, 2);
        assert_eq!(f.line(0), "Insert admin    ");
        assert_eq!(f.line(1), "card 2 of 3     ");
        let f = render(&Page::Prompt(Prompt::EnterPin { entered: 4 }), 20, 4);
        assert_eq!(f.line(1), "PIN: ****           ");
        assert_eq!(f.line(3), "OK=done C=cancel    ");
        let f = render(&Page::Boot { step: "SM2 KAT", done: 3, total: 6 }, 20, 4);
        assert_eq!(f.line(0), "Self-test 3/6       ");
        assert_eq!(f.line(2), "[#########         ]");
        let f = render(&Page::Status { state: DeviceState::Ready, link: "192.168.100.200:7443" }, 16, 2);
        assert_eq!(f.line(1), "192.168.100.200:");
        let f = render(&Page::Alarm { text: "Entropy source failed ✗" }, 20, 4);
        assert_eq!(f.line(1), "Entropy source faile");
        let mut g = Frame::new(16, 2);
        g.center(0, "gmhsm");
        assert_eq!(g.line(0), "     gmhsm      ");
        assert_eq!(g.line(5), "");
    }
}
