//! Text per page from `pdf-extract`, within the text limit and the
//! deadline: one pass over the document (`pdf_extract::output_doc`), its
//! output cut at page boundaries.

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Instant;

use lopdf::Document;
use pdf_extract::{ConvertToFmt, MediaBox, OutputDev, OutputError, PlainTextOutput, Transform};

use super::{PdfError, PdfLimits};

/// How many characters are drawn between two looks at the clock.
const CLOCK_EVERY: u32 = 256;

/// Extracts every page's text, trimmed of surrounding blank lines.
///
/// # Errors
/// [`PdfError::TooMuchText`] or [`PdfError::TimedOut`] when a limit stops
/// it, [`PdfError::Malformed`] naming the page when the parser fails.
pub(super) fn extract(
    doc: &Document,
    limits: &PdfLimits,
    deadline: Instant,
) -> Result<Vec<String>, PdfError> {
    let sink = Sink(Rc::new(RefCell::new(SinkState {
        text: String::new(),
        total: 0,
        limit: limits.max_text_bytes,
        exceeded: false,
    })));
    let mut pages = PagedText {
        sink,
        page: None,
        page_number: 0,
        pages: Vec::new(),
        deadline,
        since_clock: 0,
        timed_out: false,
    };
    match pdf_extract::output_doc(doc, &mut pages) {
        Ok(()) if pages.pages.is_empty() => Err(PdfError::NoPages),
        Ok(()) => Ok(pages.pages),
        Err(_) if pages.timed_out => Err(PdfError::TimedOut(limits.deadline)),
        Err(_) if pages.sink.0.borrow().exceeded => Err(PdfError::TooMuchText {
            limit: limits.max_text_bytes,
            page: pages.page_number,
        }),
        Err(error) => Err(PdfError::Malformed(format!(
            "page {}: {error}",
            pages.page_number
        ))),
    }
}

struct SinkState {
    text: String,
    total: usize,
    limit: usize,
    exceeded: bool,
}

/// Where `PlainTextOutput` writes: the current page's text, refusing
/// writes past the document's text limit.
#[derive(Clone)]
struct Sink(Rc<RefCell<SinkState>>);

impl fmt::Write for Sink {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let mut state = self.0.borrow_mut();
        if state.total + s.len() > state.limit {
            state.exceeded = true;
            return Err(fmt::Error);
        }
        state.total += s.len();
        state.text.push_str(s);
        Ok(())
    }
}

impl ConvertToFmt for Sink {
    type Writer = Sink;
    fn convert(self) -> Sink {
        self
    }
}

/// `pdf-extract`'s plain-text layout, fresh for every page (as its
/// page-by-page functions do), with the page's text collected at its end.
struct PagedText {
    sink: Sink,
    page: Option<PlainTextOutput<Sink>>,
    page_number: u32,
    pages: Vec<String>,
    deadline: Instant,
    since_clock: u32,
    timed_out: bool,
}

impl PagedText {
    fn past_deadline(&mut self) -> Result<(), OutputError> {
        if Instant::now() > self.deadline {
            self.timed_out = true;
            return Err(OutputError::FormatError(fmt::Error));
        }
        Ok(())
    }

    fn page(&mut self) -> &mut PlainTextOutput<Sink> {
        self.page
            .get_or_insert_with(|| PlainTextOutput::new(self.sink.clone()))
    }
}

impl OutputDev for PagedText {
    fn begin_page(
        &mut self,
        page_num: u32,
        media_box: &MediaBox,
        art_box: Option<(f64, f64, f64, f64)>,
    ) -> Result<(), OutputError> {
        self.past_deadline()?;
        self.page_number = page_num;
        self.page = Some(PlainTextOutput::new(self.sink.clone()));
        self.page().begin_page(page_num, media_box, art_box)
    }

    fn end_page(&mut self) -> Result<(), OutputError> {
        self.page().end_page()?;
        let text = std::mem::take(&mut self.sink.0.borrow_mut().text);
        self.pages.push(text.trim_matches(['\n', ' ']).to_owned());
        Ok(())
    }

    fn output_character(
        &mut self,
        trm: &Transform,
        width: f64,
        spacing: f64,
        font_size: f64,
        char: &str,
    ) -> Result<(), OutputError> {
        self.since_clock += 1;
        if self.since_clock == CLOCK_EVERY {
            self.since_clock = 0;
            self.past_deadline()?;
        }
        self.page()
            .output_character(trm, width, spacing, font_size, char)
    }

    fn begin_word(&mut self) -> Result<(), OutputError> {
        self.page().begin_word()
    }

    fn end_word(&mut self) -> Result<(), OutputError> {
        self.page().end_word()
    }

    fn end_line(&mut self) -> Result<(), OutputError> {
        self.page().end_line()
    }
}
