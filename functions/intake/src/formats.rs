//! Which kind of file some bytes are, and the text of the kinds that are
//! not PDFs or plain text: Word documents (DOCX) and web pages (HTML).
//!
//! A file's kind is told by its content first (`%PDF-`, a zip archive, an
//! HTML opening, an OLE container) and its name's extension second, so a
//! PDF uploaded as `scan.bin` is read as a PDF and a text file named
//! `notes.pdf` fails with the PDF parser's reason.
//!
//! A DOCX is a zip archive; its text is in `word/document.xml`. The part is
//! inflated through a cap ([`MAX_XML_BYTES`]): a small archive whose part
//! inflates to gigabytes (a zip bomb) fails alone instead of allocating
//! them.

use std::io::Read;

/// The kinds of file docket reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A PDF: text per page.
    Pdf,
    /// A Word document (Office Open XML).
    Docx,
    /// A web page.
    Html,
    /// A legacy or encrypted Office file (an OLE compound file): no text.
    Ole,
    /// A JSON document or manifest.
    Json,
    /// A JSONL manifest.
    Jsonl,
    /// UTF-8 text (also Markdown).
    Text,
}

/// Most bytes the main part of a DOCX may inflate to.
pub const MAX_XML_BYTES: u64 = 64 * 1024 * 1024;

/// The kind of the file named `name` holding `bytes`.
pub fn kind_of(name: &str, bytes: &[u8]) -> FileKind {
    let head = &bytes[..bytes.len().min(1024)];
    if head.windows(5).any(|w| w == b"%PDF-") {
        return FileKind::Pdf;
    }
    if head.starts_with(b"PK\x03\x04") {
        return FileKind::Docx;
    }
    if head.starts_with(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]) {
        return FileKind::Ole;
    }
    if looks_like_html(head) {
        return FileKind::Html;
    }
    let extension = name
        .rsplit_once('.')
        .map(|(_, e)| e.to_ascii_lowercase())
        .unwrap_or_default();
    match extension.as_str() {
        "pdf" => FileKind::Pdf,
        "docx" => FileKind::Docx,
        "doc" => FileKind::Ole,
        "html" | "htm" | "xhtml" => FileKind::Html,
        "json" => FileKind::Json,
        "jsonl" => FileKind::Jsonl,
        _ => FileKind::Text,
    }
}

fn looks_like_html(head: &[u8]) -> bool {
    let text = String::from_utf8_lossy(head);
    let start = text
        .trim_start_matches('\u{feff}')
        .trim_start()
        .to_ascii_lowercase();
    start.starts_with("<!doctype html") || start.starts_with("<html")
}

/// The text of a Word document: its paragraphs, one a line, with tabs
/// and line breaks kept.
///
/// # Errors
/// Why there is none: not a zip archive, no `word/document.xml` (another
/// kind of archive), a part past [`MAX_XML_BYTES`], XML that does not
/// parse.
pub fn docx_text(bytes: &[u8]) -> Result<String, String> {
    let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
        .map_err(|e| format!("not a DOCX (the zip archive does not open: {e})"))?;
    let mut part = archive.by_name("word/document.xml").map_err(|_| {
        "not a DOCX: the archive has no word/document.xml (another kind of zip?)".to_owned()
    })?;
    let mut xml = Vec::new();
    (&mut part)
        .take(MAX_XML_BYTES + 1)
        .read_to_end(&mut xml)
        .map_err(|e| format!("the DOCX does not inflate: {e}"))?;
    if xml.len() as u64 > MAX_XML_BYTES {
        return Err(format!(
            "the DOCX's text part inflates past {MAX_XML_BYTES} bytes (a zip bomb?)"
        ));
    }
    wordprocessing_text(&xml)
}

/// The text of WordprocessingML: `w:t` runs, `w:tab`, `w:br`/`w:cr`, and a
/// line break after each paragraph.
fn wordprocessing_text(xml: &[u8]) -> Result<String, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_reader(xml);
    let mut text = String::new();
    let mut in_text = false;
    let mut buffer = Vec::new();
    loop {
        let event = reader
            .read_event_into(&mut buffer)
            .map_err(|e| format!("the DOCX's XML does not parse: {e}"))?;
        let bad = |e: &dyn std::fmt::Display| format!("the DOCX's XML does not parse: {e}");
        match event {
            Event::Start(e) if e.name().0 == "w:t" => in_text = true,
            Event::End(e) => match e.name().0 {
                "w:t" => in_text = false,
                "w:p" => text.push('\n'),
                _ => {}
            },
            Event::Empty(e) => match e.name().0 {
                "w:tab" => text.push('\t'),
                "w:br" | "w:cr" | "w:p" => text.push('\n'),
                _ => {}
            },
            Event::Text(t) if in_text => text.push_str(&t.xml10_content()),
            Event::GeneralRef(r) if in_text => match r.resolve_char_ref().map_err(|e| bad(&e))? {
                Some(c) => text.push(c),
                None => text.push_str(
                    &quick_xml::escape::unescape(&format!("&{};", &*r)).map_err(|e| bad(&e))?,
                ),
            },
            Event::Eof => break,
            _ => {}
        }
        buffer.clear();
    }
    Ok(text)
}

/// Deepest element nesting a web page may have. The HTML parser and
/// renderer take time quadratic in the depth (100,000 nested `div`s: over
/// three minutes), so deeper pages are refused before parsing; real pages
/// nest a few dozen deep.
pub const MAX_HTML_DEPTH: usize = 1000;

/// Elements that never nest: void ones, and those whose end tag may be
/// left out (the parser closes them when a sibling opens).
const UNNESTED: &[&str] = &[
    "area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track",
    "wbr", "param", "keygen", "p", "li", "dt", "dd", "tr", "td", "th", "option", "optgroup",
    "thead", "tbody", "tfoot", "colgroup", "rt", "rp", "html", "head", "body",
];

/// How deep a page's elements nest, by a linear scan of its tags
/// (comments, declarations and the raw text of scripts and styles
/// skipped).
fn nesting_depth(html: &[u8]) -> usize {
    let (mut depth, mut deepest, mut at) = (0usize, 0usize, 0usize);
    let find = |from: usize, needle: &[u8]| {
        html[from.min(html.len())..]
            .windows(needle.len())
            .position(|w| w.eq_ignore_ascii_case(needle))
            .map(|p| from + p)
    };
    while let Some(open) = find(at, b"<") {
        let rest = &html[open + 1..];
        if rest.starts_with(b"!--") {
            at = find(open + 4, b"-->").map_or(html.len(), |end| end + 3);
            continue;
        }
        let end = find(open, b">").unwrap_or(html.len());
        at = end + 1;
        let closing = rest.first() == Some(&b'/');
        let name: Vec<u8> = rest[usize::from(closing)..]
            .iter()
            .take_while(|c| c.is_ascii_alphanumeric())
            .map(u8::to_ascii_lowercase)
            .collect();
        let name = String::from_utf8_lossy(&name);
        if name.is_empty() || UNNESTED.contains(&name.as_ref()) {
            continue;
        }
        if closing {
            depth = depth.saturating_sub(1);
        } else if html[..end].last() != Some(&b'/') {
            if name == "script" || name == "style" {
                at = find(at, format!("</{name}").as_bytes()).unwrap_or(html.len());
                continue;
            }
            depth += 1;
            deepest = deepest.max(depth);
        }
    }
    deepest
}

/// The text of a web page: what a reader sees, without markup, scripts or
/// styles, lines not re-wrapped.
///
/// # Errors
/// Why there is none: elements nested past [`MAX_HTML_DEPTH`], a page
/// that does not parse.
pub fn html_text(bytes: &[u8]) -> Result<String, String> {
    let depth = nesting_depth(bytes);
    if depth > MAX_HTML_DEPTH {
        return Err(format!(
            "the HTML nests elements {depth} deep, past the limit of {MAX_HTML_DEPTH}"
        ));
    }
    html2text::config::plain_no_decorate()
        .no_link_wrapping()
        .allow_width_overflow()
        .string_from_read(bytes, 10_000)
        .map_err(|e| format!("the HTML does not parse: {e}"))
        .map(|text| {
            text.lines()
                .map(str::trim_end)
                .collect::<Vec<_>>()
                .join("\n")
        })
}

/// A minimal Word document holding `paragraphs` (the tests' and
/// benchmarks' DOCX files are made with it), its main part written as
/// `xml` says when given (to make broken or oversized documents).
///
/// # Errors
/// The archive's errors.
pub fn write_docx(paragraphs: &[&str], xml: Option<&[u8]>) -> zip::result::ZipResult<Vec<u8>> {
    use std::io::Write;
    let escape = |text: &str| {
        text.replace('&', "&amp;")
            .replace('<', "&lt;")
            .replace('>', "&gt;")
    };
    let body: String = paragraphs
        .iter()
        .map(|p| {
            format!(
                "<w:p><w:r><w:t xml:space=\"preserve\">{}</w:t></w:r></w:p>",
                escape(p)
            )
        })
        .collect();
    let document = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"yes\"?>\
         <w:document xmlns:w=\"http://schemas.openxmlformats.org/wordprocessingml/2006/main\">\
         <w:body>{body}</w:body></w:document>"
    );
    let parts: [(&str, &[u8]); 3] = [
        (
            "[Content_Types].xml",
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Types xmlns=\"http://schemas.openxmlformats.org/package/2006/content-types\">\
              <Default Extension=\"rels\" ContentType=\"application/vnd.openxmlformats-package.relationships+xml\"/>\
              <Default Extension=\"xml\" ContentType=\"application/xml\"/>\
              <Override PartName=\"/word/document.xml\" ContentType=\"application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml\"/></Types>",
        ),
        (
            "_rels/.rels",
            b"<?xml version=\"1.0\" encoding=\"UTF-8\"?><Relationships xmlns=\"http://schemas.openxmlformats.org/package/2006/relationships\">\
              <Relationship Id=\"rId1\" Type=\"http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument\" Target=\"word/document.xml\"/></Relationships>",
        ),
        ("word/document.xml", xml.unwrap_or(document.as_bytes())),
    ];
    let mut writer = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(xml.is_some_and(|x| x.len() > u32::MAX as usize));
    for (name, bytes) in parts {
        writer.start_file(name, options)?;
        writer.write_all(bytes)?;
    }
    Ok(writer.finish()?.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_are_told_by_content_first() {
        assert_eq!(kind_of("scan.bin", b"%PDF-1.7\n..."), FileKind::Pdf);
        assert_eq!(kind_of("notes.pdf", b"just text"), FileKind::Pdf);
        assert_eq!(kind_of("a.txt", b"PK\x03\x04rest"), FileKind::Docx);
        assert_eq!(
            kind_of("page", b"\xef\xbb\xbf  <!DOCTYPE html><p>x"),
            FileKind::Html
        );
        assert_eq!(kind_of("page.htm", b"<p>x</p>"), FileKind::Html);
        assert_eq!(
            kind_of("old.doc", &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]),
            FileKind::Ole
        );
        assert_eq!(kind_of("m.JSON", b"{}"), FileKind::Json);
        assert_eq!(kind_of("README", b"hello"), FileKind::Text);
    }

    #[test]
    fn wordprocessing_runs_tabs_and_paragraphs_become_lines() {
        let xml = br#"<w:document xmlns:w="x"><w:body>
            <w:p><w:r><w:t>Plan</w:t></w:r><w:r><w:tab/><w:t xml:space="preserve">de &amp; gestion</w:t></w:r></w:p>
            <w:p><w:r><w:t>line</w:t><w:br/><w:t>two</w:t></w:r></w:p>
            <w:p/>
        </w:body></w:document>"#;
        assert_eq!(
            wordprocessing_text(xml).unwrap(),
            "Plan\tde & gestion\nline\ntwo\n\n"
        );
    }

    #[test]
    fn a_word_document_reads_as_its_paragraphs() {
        let docx = write_docx(&["Plan de desarrollo", "Agua & saneamiento <2026>"], None).unwrap();
        assert_eq!(kind_of("plan.docx", &docx), FileKind::Docx);
        assert_eq!(
            docx_text(&docx).unwrap(),
            "Plan de desarrollo\nAgua & saneamiento <2026>\n"
        );
    }

    #[test]
    fn archives_that_are_not_word_documents_fail_with_the_reason() {
        assert!(
            docx_text(b"PK\x03\x04 not really")
                .unwrap_err()
                .starts_with("not a DOCX (the zip archive does not open: ")
        );
        let mut other = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
        other
            .start_file("notes.txt", zip::write::SimpleFileOptions::default())
            .unwrap();
        let other = other.finish().unwrap().into_inner();
        assert_eq!(
            docx_text(&other).unwrap_err(),
            "not a DOCX: the archive has no word/document.xml (another kind of zip?)"
        );
        let broken = write_docx(&[], Some(b"<w:document><w:p></w:document>")).unwrap();
        assert!(
            docx_text(&broken)
                .unwrap_err()
                .starts_with("the DOCX's XML does not parse: "),
        );
    }

    #[test]
    fn a_zip_bomb_stops_at_the_cap() {
        // 65 MiB of one byte deflates to about 64 KiB.
        let xml = vec![b' '; (MAX_XML_BYTES + 1024 * 1024) as usize];
        let bomb = write_docx(&[], Some(&xml)).unwrap();
        assert!(bomb.len() < 1024 * 1024, "{} bytes", bomb.len());
        assert_eq!(
            docx_text(&bomb).unwrap_err(),
            format!("the DOCX's text part inflates past {MAX_XML_BYTES} bytes (a zip bomb?)")
        );
    }

    #[test]
    fn pages_nested_past_the_limit_are_refused_before_parsing() {
        let nested = |depth: usize| {
            format!("{}deep{}", "<div>".repeat(depth), "</div>".repeat(depth)).into_bytes()
        };
        assert_eq!(
            html_text(&nested(100_000)).unwrap_err(),
            "the HTML nests elements 100000 deep, past the limit of 1000"
        );
        assert!(html_text(&nested(MAX_HTML_DEPTH)).unwrap().contains("deep"));
        // Unclosed paragraphs and list items, comments, scripts and void
        // elements do not nest.
        let sloppy = format!(
            "<html><body>{}<!-- <div><div> --><script>if (a<b) {{ x = '<div>'; }}</script>{}</body></html>",
            "<p>para<br><img src=x>".repeat(5000),
            "<ul><li>one<li>two</ul>".repeat(2000),
        );
        assert_eq!(nesting_depth(sloppy.as_bytes()), 1);
        assert!(html_text(sloppy.as_bytes()).unwrap().contains("para"));
    }

    #[test]
    fn html_keeps_what_a_reader_sees() {
        let page = b"<!doctype html><html><head><title>t</title><style>p{color:red}</style>\
            <script>var x = 1;</script></head><body><h1>Plan</h1><p>First <b>bold</b> line.</p>\
            <ul><li>one</li><li>two</li></ul></body></html>";
        let text = html_text(page).unwrap();
        assert!(text.contains("Plan"), "{text}");
        assert!(text.contains("First bold line."), "{text}");
        assert!(text.contains("one") && text.contains("two"), "{text}");
        assert!(!text.contains("color") && !text.contains("var x"), "{text}");
    }
}
