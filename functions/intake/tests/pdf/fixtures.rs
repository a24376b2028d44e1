//! Pathological PDFs, made by code so that nothing here needs a licence:
//! each function returns the bytes of one known-bad (or known-slow) file.
//! `lopdf` writes them; the structure each one breaks is named in its doc.

use lopdf::content::{Content, Operation};
use lopdf::{Dictionary, Document, EncryptionState, EncryptionVersion, Object, ObjectId, Stream};
use lopdf::{Permissions, dictionary};

/// A content stream showing `lines` in Helvetica (resource name `F1`).
fn text_content(lines: &[&str]) -> Vec<u8> {
    let mut operations = vec![
        Operation::new("BT", vec![]),
        Operation::new("Tf", vec!["F1".into(), 10.into()]),
        Operation::new("TL", vec![13.into()]),
        Operation::new("Td", vec![50.into(), 790.into()]),
    ];
    for line in lines {
        operations.push(Operation::new(
            "Tj",
            vec![Object::string_literal(line.as_bytes().to_vec())],
        ));
        operations.push(Operation::new("T*", vec![]));
    }
    operations.push(Operation::new("ET", vec![]));
    Content { operations }.encode().expect("encode content")
}

fn font_resources(doc: &mut Document) -> Dictionary {
    let font = doc.add_object(dictionary! {
        "Type" => "Font",
        "Subtype" => "Type1",
        "BaseFont" => "Helvetica",
        "Encoding" => "WinAnsiEncoding",
    });
    dictionary! { "Font" => dictionary! { "F1" => font } }
}

fn media_box() -> Object {
    vec![0.into(), 0.into(), 595.into(), 842.into()].into()
}

fn save(mut doc: Document, root_pages: ObjectId) -> Vec<u8> {
    let catalog = doc.add_object(dictionary! { "Type" => "Catalog", "Pages" => root_pages });
    doc.trailer.set("Root", catalog);
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("save PDF");
    bytes
}

/// A page tree with a cycle: the root `R` has kids `[P1, M]`, and `M` has
/// kids `[P2, R]` — a Kids entry pointing back to its ancestor — while
/// `R`'s `Parent` is `M`. `P2` has no `Resources`, so a reader looking for
/// inherited resources walks `P2 → M → R → M → …` for ever.
pub fn page_tree_loop() -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let root = doc.new_object_id();
    let middle = doc.new_object_id();
    let resources = font_resources(&mut doc);
    let first_content = doc.add_object(Stream::new(
        dictionary! {},
        text_content(&["first page of a looping tree"]),
    ));
    let first = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => root, "Contents" => first_content,
        "Resources" => resources,
    });
    let second_content = doc.add_object(Stream::new(dictionary! {}, text_content(&["second"])));
    let second = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => middle, "Contents" => second_content,
    });
    doc.objects.insert(
        root,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![first.into(), middle.into()], "Count" => 2,
            "Parent" => middle, "MediaBox" => media_box(),
        }),
    );
    doc.objects.insert(
        middle,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![second.into(), root.into()], "Count" => 1,
            "Parent" => root,
        }),
    );
    save(doc, root)
}

/// `pages` pages under one `Pages` node, all showing one shared content
/// stream.
pub fn wide_page_tree(pages: usize) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let root = doc.new_object_id();
    let resources = font_resources(&mut doc);
    let resources = doc.add_object(resources);
    let content = doc.add_object(Stream::new(dictionary! {}, text_content(&["a page"])));
    let kids: Vec<Object> = (0..pages)
        .map(|_| {
            doc.add_object(dictionary! {
                "Type" => "Page", "Parent" => root, "Contents" => content,
            })
            .into()
        })
        .collect();
    doc.objects.insert(
        root,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => kids, "Count" => pages as i64,
            "Resources" => resources, "MediaBox" => media_box(),
        }),
    );
    save(doc, root)
}

/// One page at the bottom of a chain of `depth` nested `Pages` nodes.
pub fn deep_page_tree(depth: usize) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let ids: Vec<ObjectId> = (0..depth).map(|_| doc.new_object_id()).collect();
    let resources = font_resources(&mut doc);
    let content = doc.add_object(Stream::new(dictionary! {}, text_content(&["deep"])));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => ids[depth - 1], "Contents" => content,
        "Resources" => resources,
    });
    for (level, id) in ids.iter().enumerate() {
        let kid = ids.get(level + 1).copied().unwrap_or(page);
        let mut node = dictionary! { "Type" => "Pages", "Kids" => vec![kid.into()], "Count" => 1 };
        if level == 0 {
            node.set("MediaBox", media_box());
        } else {
            node.set("Parent", ids[level - 1]);
        }
        doc.objects.insert(*id, Object::Dictionary(node));
    }
    save(doc, ids[0])
}

/// A page drawing a form XObject that draws itself: `/X1 Do` inside `X1`.
pub fn self_drawing_form() -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let root = doc.new_object_id();
    let form = doc.new_object_id();
    let mut resources = font_resources(&mut doc);
    resources.set("XObject", dictionary! { "X1" => form });
    let resources = doc.add_object(resources);
    let mut body = text_content(&["again"]);
    body.extend_from_slice(b"\n/X1 Do\n");
    doc.objects.insert(
        form,
        Object::Stream(Stream::new(
            dictionary! {
                "Type" => "XObject", "Subtype" => "Form",
                "BBox" => media_box(), "Resources" => resources,
            },
            body,
        )),
    );
    let content = doc.add_object(Stream::new(dictionary! {}, b"/X1 Do".to_vec()));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => root, "Contents" => content, "Resources" => resources,
    });
    doc.objects.insert(
        root,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
            "MediaBox" => media_box(),
        }),
    );
    save(doc, root)
}

/// One page whose content shows `lines` lines of 60 characters: big
/// enough to take a while and to exceed a small text limit.
pub fn heavy_page(lines: usize) -> Vec<u8> {
    let mut doc = Document::with_version("1.5");
    let root = doc.new_object_id();
    let resources = font_resources(&mut doc);
    let line = "The quick brown fox jumps over the lazy dog, again and again.";
    let text: Vec<&str> = std::iter::repeat_n(line, lines).collect();
    let content = doc.add_object(Stream::new(dictionary! {}, text_content(&text)));
    let page = doc.add_object(dictionary! {
        "Type" => "Page", "Parent" => root, "Contents" => content, "Resources" => resources,
    });
    doc.objects.insert(
        root,
        Object::Dictionary(dictionary! {
            "Type" => "Pages", "Kids" => vec![page.into()], "Count" => 1,
            "MediaBox" => media_box(),
        }),
    );
    save(doc, root)
}

/// A text PDF of `pages` pages encrypted (RC4, 128-bit key) with a user
/// password, so that it cannot be opened without one.
pub fn encrypted(pages: usize) -> Vec<u8> {
    let text: Vec<String> = (1..=pages).map(|n| format!("secret page {n}")).collect();
    let plain = docket_intake::pdf::write_text_pdf(&text).expect("write PDF");
    let mut doc = Document::load_mem(&plain).expect("reload PDF");
    // The key derivation needs the file identifier.
    let id = Object::string_literal(b"docket-fixture-0".to_vec());
    doc.trailer.set("ID", vec![id.clone(), id]);
    let version = EncryptionVersion::V2 {
        document: &doc,
        owner_password: "owner",
        user_password: "user",
        key_length: 128,
        permissions: Permissions::all(),
    };
    let state = EncryptionState::try_from(version).expect("encryption state");
    doc.encrypt(&state).expect("encrypt");
    let mut bytes = Vec::new();
    doc.save_to(&mut bytes).expect("save PDF");
    bytes
}

/// The first half of `bytes`.
pub fn truncated(bytes: &[u8]) -> Vec<u8> {
    bytes[..bytes.len() / 2].to_vec()
}

/// A PDF header followed by 64 KiB of pseudo-random bytes (a fixed seed,
/// so every run sees the same file).
pub fn garbage_after_header() -> Vec<u8> {
    let mut bytes = b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n".to_vec();
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..64 * 1024 {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        bytes.push((state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8);
    }
    bytes
}
