//! PDF text: reading a PDF's text page by page, and writing simple text
//! PDFs (the sample corpus and benchmark inputs are made with it).

use lopdf::content::{Content, Operation};
use lopdf::{Document, Object, Stream, dictionary};

/// Extracts the text of every page.
///
/// # Errors
/// A message saying why the PDF is unreadable (malformed, encrypted, or the
/// parser gave up on it).
pub fn extract_pages(bytes: &[u8]) -> Result<Vec<String>, String> {
    // The parser can panic on malformed input; that is the document's fault
    // and must not take the run down.
    let result = std::panic::catch_unwind(|| pdf_extract::extract_text_from_mem_by_pages(bytes));
    match result {
        Ok(Ok(pages)) if pages.is_empty() => Err("the PDF has no pages".into()),
        Ok(Ok(pages)) => Ok(pages
            .into_iter()
            .map(|page| page.trim_matches(['\n', ' ']).to_owned())
            .collect()),
        Ok(Err(e)) => Err(e.to_string()),
        Err(_) => Err("the PDF parser failed on this file".into()),
    }
}

/// Encodes text for a standard font's WinAnsi encoding (Latin-1 for the
/// characters docket writes); anything else becomes `?`.
fn win_ansi(text: &str) -> Vec<u8> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).unwrap_or(b'?'))
        .collect()
}

/// Writes a PDF with one page per entry of `pages`, each line of a page a
/// line of Helvetica text.
///
/// # Errors
/// When lopdf cannot encode the document.
pub fn write_text_pdf(pages: &[String]) -> Result<Vec<u8>, lopdf::Error> {
    let mut doc = Document::with_version("1.5");
    let pages_id = doc.new_object_id();
    let font_id = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    let resources_id = doc.add_object(dictionary! {
        "Font" => dictionary! { "F1" => font_id },
    });
    let mut kids: Vec<Object> = Vec::with_capacity(pages.len());
    for page in pages {
        let mut operations = vec![
            Operation::new("BT", vec![]),
            Operation::new("Tf", vec!["F1".into(), 10.into()]),
            Operation::new("TL", vec![13.into()]),
            Operation::new("Td", vec![50.into(), 790.into()]),
        ];
        for line in page.lines() {
            operations.push(Operation::new(
                "Tj",
                vec![Object::string_literal(win_ansi(line))],
            ));
            operations.push(Operation::new("T*", vec![]));
        }
        operations.push(Operation::new("ET", vec![]));
        let content = Content { operations }.encode()?;
        let content_id = doc.add_object(Stream::new(dictionary! {}, content));
        let page_id = doc.add_object(dictionary! {
            "Type" => "Page",
            "Parent" => pages_id,
            "Contents" => content_id,
        });
        kids.push(page_id.into());
    }
    let count = kids.len() as i64;
    doc.objects.insert(
        pages_id,
        Object::Dictionary(dictionary! {
            "Type" => "Pages",
            "Kids" => kids,
            "Count" => count,
            "Resources" => resources_id,
            "MediaBox" => vec![0.into(), 0.into(), 595.into(), 842.into()],
        }),
    );
    let catalog_id = doc.add_object(dictionary! {
        "Type" => "Catalog",
        "Pages" => pages_id,
    });
    doc.trailer.set("Root", catalog_id);
    doc.compress();
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes)?;
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_pages_read_back_in_order() {
        let pages = vec![
            "First page\nwith two lines".to_owned(),
            "Second page: diagnóstico".to_owned(),
            "Third".to_owned(),
        ];
        let bytes = write_text_pdf(&pages).unwrap();
        let read = extract_pages(&bytes).unwrap();
        assert_eq!(read.len(), 3);
        assert!(read[0].contains("First page"), "{read:?}");
        assert!(read[0].contains("with two lines"), "{read:?}");
        assert!(read[1].contains("diagnóstico"), "{read:?}");
        assert_eq!(read[2], "Third");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(extract_pages(b"%PDF-1.5 this is not a pdf").is_err());
        assert!(extract_pages(b"").is_err());
    }
}
