//! A character display (the front-panel LCD): whole lines of text, nothing else.

/// Why the display did not take the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum DisplayError {
    /// The bus to the display failed; the screen may show a partial update. Redraw.
    Bus,
    /// Row outside the display; nothing was written.
    BadRow,
}

/// A text display of fixed geometry. Text is ASCII; other characters are shown as `?`.
/// Lines longer than [`TextDisplay::columns`] are cut, shorter ones padded with spaces.
pub trait TextDisplay {
    fn columns(&self) -> u8;
    fn rows(&self) -> u8;
    /// Replace row `row` (0-based) with `text`.
    fn write_line(&mut self, row: u8, text: &str) -> Result<(), DisplayError>;
    /// Blank every row.
    fn clear(&mut self) -> Result<(), DisplayError>;
    fn set_backlight(&mut self, on: bool) -> Result<(), DisplayError>;
}
