//! Splitting a document into work items: N pages of a paged document, or
//! N KiB of text cut on paragraph boundaries.
//!
//! Chunks tile the document's text exactly: pages are joined by one form feed
//! (`\x0c`), and every chunk records the byte offset of its text, so evidence
//! found in a chunk maps back to the whole document.

use std::ops::Range;

use crate::model::{ChunkInfo, Chunking, DocumentBody};

/// Separator placed between pages when a paged document is seen as one text.
pub const PAGE_SEPARATOR: char = '\x0c';

/// One planned chunk: where it sits and its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// Position in the document.
    pub info: ChunkInfo,
    /// The chunk's text.
    pub text: String,
}

/// The document's whole text (pages joined by [`PAGE_SEPARATOR`]).
pub fn full_text(body: &DocumentBody) -> String {
    match body {
        DocumentBody::Text(text) => text.clone(),
        DocumentBody::Pages(pages) => pages.join(&PAGE_SEPARATOR.to_string()),
    }
}

/// Splits `body` into chunks according to `chunking`. Always returns at least
/// one chunk; an unsplit document is one chunk with [`ChunkInfo::WHOLE`].
pub fn plan(body: &DocumentBody, chunking: &Chunking) -> Vec<Chunk> {
    /// A chunk's page range (for paged documents), offset and text.
    type Piece = (Option<(u32, u32)>, u64, String);
    let pieces: Vec<Piece> = match body {
        DocumentBody::Pages(pages) if !pages.is_empty() => {
            let per_chunk = chunking.pages.unwrap_or(u32::MAX).max(1) as usize;
            let mut offset = 0u64;
            pages
                .chunks(per_chunk)
                .enumerate()
                .map(|(n, group)| {
                    let first = (n * per_chunk) as u32 + 1;
                    let last = first + group.len() as u32 - 1;
                    let text = group.join(&PAGE_SEPARATOR.to_string());
                    let piece = (Some((first, last)), offset, text);
                    offset += piece.2.len() as u64 + 1;
                    piece
                })
                .collect()
        }
        DocumentBody::Pages(_) => vec![(None, 0, String::new())],
        DocumentBody::Text(text) => {
            let max = chunking
                .text_kib
                .map_or(usize::MAX, |kib| (kib as usize).saturating_mul(1024).max(1));
            split_text(text, max)
                .into_iter()
                .map(|range| (None, range.start as u64, text[range].to_owned()))
                .collect()
        }
    };
    let count = pieces.len() as u32;
    if count == 1 {
        let (pages, _, text) = pieces.into_iter().next().unwrap_or_default();
        return vec![Chunk {
            info: ChunkInfo {
                first_page: pages.map(|p| p.0),
                last_page: pages.map(|p| p.1),
                ..ChunkInfo::WHOLE
            },
            text,
        }];
    }
    pieces
        .into_iter()
        .enumerate()
        .map(|(index, (pages, offset, text))| Chunk {
            info: ChunkInfo {
                index: index as u32,
                count,
                first_page: pages.map(|p| p.0),
                last_page: pages.map(|p| p.1),
                offset,
            },
            text,
        })
        .collect()
}

/// The document a list of its chunks (in order, each with its text) was
/// planned from: the inverse of [`plan`]. Chunks of a paged document carry
/// page numbers and give back its pages; text chunks tile the text.
pub fn reassemble(chunks: &[(ChunkInfo, String)]) -> DocumentBody {
    let paged = chunks.iter().any(|(info, _)| info.first_page.is_some());
    if paged {
        let joined: Vec<&str> = chunks.iter().map(|(_, text)| text.as_str()).collect();
        let joined = joined.join(&PAGE_SEPARATOR.to_string());
        DocumentBody::Pages(joined.split(PAGE_SEPARATOR).map(str::to_owned).collect())
    } else {
        DocumentBody::Text(chunks.iter().map(|(_, text)| text.as_str()).collect())
    }
}

/// Cuts `text` into ranges of at most `max` bytes (a single character longer
/// than `max` is kept whole), preferring to cut after a blank line, then
/// after a line break, then after a space, then anywhere on a character
/// boundary. The ranges tile the text.
pub fn split_text(text: &str, max: usize) -> Vec<Range<usize>> {
    let mut ranges = Vec::new();
    let mut start = 0;
    while text.len() - start > max {
        let window_end = floor_char_boundary(text, start + max);
        let window = &text[start..window_end];
        let after = |found: Option<usize>, sep: usize| {
            found.map(|i| start + i + sep).filter(|&cut| cut > start)
        };
        let cut = after(window.rfind("\n\n"), 2)
            .or_else(|| after(window.rfind('\n'), 1))
            .or_else(|| after(window.rfind(' '), 1))
            .unwrap_or(window_end);
        let cut = if cut > start {
            cut
        } else {
            ceil_char_boundary(text, start + 1)
        };
        ranges.push(start..cut);
        start = cut;
    }
    if start < text.len() || ranges.is_empty() {
        ranges.push(start..text.len());
    }
    ranges
}

fn floor_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

fn ceil_char_boundary(text: &str, mut at: usize) -> usize {
    at = at.min(text.len());
    while !text.is_char_boundary(at) {
        at += 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(chunks: &[Chunk]) -> Vec<&str> {
        chunks.iter().map(|c| c.text.as_str()).collect()
    }

    #[test]
    fn small_text_is_one_whole_chunk() {
        let chunks = plan(&DocumentBody::Text("hello".into()), &Chunking::default());
        assert_eq!(chunks.len(), 1);
        assert_eq!(chunks[0].info, ChunkInfo::WHOLE);
        assert_eq!(chunks[0].text, "hello");
    }

    #[test]
    fn text_is_cut_after_paragraphs() {
        let text = "aaaa\n\nbbbb\n\ncccc";
        assert_eq!(split_text(text, 8), [0..6, 6..12, 12..16]);
        assert_eq!(split_text(text, 12), [0..12, 12..16]);
    }

    #[test]
    fn falls_back_to_lines_spaces_then_characters() {
        assert_eq!(split_text("ab\ncd ef", 5), [0..3, 3..8]);
        assert_eq!(split_text("abc def", 5), [0..4, 4..7]);
        assert_eq!(split_text("abcdefgh", 3), [0..3, 3..6, 6..8]);
    }

    #[test]
    fn never_cuts_inside_a_character() {
        let text = "ñññññ"; // 2 bytes each
        let ranges = split_text(text, 3);
        assert_eq!(ranges, [0..2, 2..4, 4..6, 6..8, 8..10]);
        // A limit smaller than one character still makes progress.
        assert_eq!(split_text("ñ", 1), vec![0..2]);
    }

    #[test]
    fn chunks_tile_the_text_and_record_offsets() {
        let text = "one paragraph\n\n".repeat(200);
        let chunks = plan(
            &DocumentBody::Text(text.clone()),
            &Chunking {
                pages: None,
                text_kib: Some(1),
            },
        );
        assert!(chunks.len() > 1);
        let joined: String = chunks.iter().map(|c| c.text.as_str()).collect();
        assert_eq!(joined, text);
        for (n, chunk) in chunks.iter().enumerate() {
            assert_eq!(chunk.info.index as usize, n);
            assert_eq!(chunk.info.count as usize, chunks.len());
            assert!(chunk.text.len() <= 1024);
            let at = chunk.info.offset as usize;
            assert_eq!(&text[at..at + chunk.text.len()], chunk.text);
        }
    }

    #[test]
    fn pages_are_grouped_with_page_numbers_and_offsets() {
        let pages: Vec<String> = (1..=7).map(|n| format!("page {n}")).collect();
        let body = DocumentBody::Pages(pages);
        let chunks = plan(
            &body,
            &Chunking {
                pages: Some(3),
                text_kib: None,
            },
        );
        assert_eq!(
            texts(&chunks),
            [
                "page 1\x0cpage 2\x0cpage 3",
                "page 4\x0cpage 5\x0cpage 6",
                "page 7"
            ]
        );
        let pages: Vec<_> = chunks
            .iter()
            .map(|c| (c.info.first_page, c.info.last_page))
            .collect();
        assert_eq!(
            pages,
            [(Some(1), Some(3)), (Some(4), Some(6)), (Some(7), Some(7))]
        );
        let whole = full_text(&body);
        for chunk in &chunks {
            let at = chunk.info.offset as usize;
            assert_eq!(&whole[at..at + chunk.text.len()], chunk.text);
        }
        assert_eq!(whole.len(), body.len());
    }

    #[test]
    fn pages_unsplit_when_chunking_is_off() {
        let body = DocumentBody::Pages(vec!["a".into(), "b".into()]);
        let chunks = plan(
            &body,
            &Chunking {
                pages: None,
                text_kib: None,
            },
        );
        assert_eq!(texts(&chunks), ["a\x0cb"]);
        assert_eq!(chunks[0].info.first_page, Some(1));
        assert_eq!(chunks[0].info.last_page, Some(2));
        assert_eq!(chunks[0].info.count, 1);
    }

    #[test]
    fn reassembling_planned_chunks_gives_the_document_back() {
        let paged = DocumentBody::Pages((1..=7).map(|n| format!("page {n}")).collect());
        let text = DocumentBody::Text("one paragraph\n\n".repeat(200));
        for body in [paged, text] {
            for chunking in [
                Chunking::default(),
                Chunking {
                    pages: Some(3),
                    text_kib: Some(1),
                },
            ] {
                let pieces: Vec<(ChunkInfo, String)> = plan(&body, &chunking)
                    .into_iter()
                    .map(|c| (c.info, c.text))
                    .collect();
                assert_eq!(reassemble(&pieces), body, "{chunking:?}");
            }
        }
    }
}
