//! Checks, on the parsed document, for the shapes that `pdf-extract`
//! would follow without end: loops and excessive depth in the page tree,
//! too many pages, and form XObjects that draw themselves.

use std::collections::HashSet;
use std::time::Instant;

use lopdf::content::Content;
use lopdf::{Dictionary, Document, Object, ObjectId, Stream};

use super::{PdfError, PdfLimits};

/// Checks the page tree and the forms every page can draw.
///
/// # Errors
/// The first limit the document breaks, or [`PdfError::TimedOut`] once the
/// deadline has passed.
pub(super) fn check(doc: &Document, limits: &PdfLimits, deadline: Instant) -> Result<(), PdfError> {
    let pages = page_leaves(doc, limits)?;
    if pages.is_empty() {
        return Err(PdfError::NoPages);
    }
    let mut forms = FormCheck {
        doc,
        limits,
        checked: HashSet::new(),
    };
    for page in pages {
        if Instant::now() > deadline {
            return Err(PdfError::TimedOut(limits.deadline));
        }
        let resources = inherited_resources(doc, page, limits)?;
        forms.check_resources(resources)?;
    }
    Ok(())
}

/// The pages, found by walking `Kids` from the catalog's `Pages` the way
/// `lopdf` does (kids that are not references to `Page` or `Pages`
/// dictionaries are skipped), refusing any `Pages` node reached twice.
fn page_leaves<'d>(doc: &'d Document, limits: &PdfLimits) -> Result<Vec<&'d Dictionary>, PdfError> {
    let Ok(root) = doc
        .catalog()
        .and_then(|catalog| catalog.get(b"Pages"))
        .and_then(Object::as_reference)
    else {
        return Ok(Vec::new());
    };
    let mut seen = HashSet::from([root]);
    let mut pending = vec![(root, 1)];
    let mut pages = Vec::new();
    while let Some((node, depth)) = pending.pop() {
        let Ok(kids) = doc
            .get_dictionary(node)
            .and_then(|node| node.get_deref(b"Kids", doc))
            .and_then(Object::as_array)
        else {
            continue;
        };
        for kid in kids {
            let Ok(id) = kid.as_reference() else { continue };
            let Ok(dict) = doc.get_dictionary(id) else {
                continue;
            };
            match dict.get_type() {
                Ok(b"Page") => {
                    if pages.len() == limits.max_pages {
                        return Err(PdfError::TooManyPages {
                            limit: limits.max_pages,
                        });
                    }
                    pages.push(dict);
                }
                Ok(b"Pages") => {
                    if !seen.insert(id) {
                        return Err(PdfError::PageTreeLoop { object: id });
                    }
                    if depth == limits.max_tree_depth {
                        return Err(PdfError::PageTreeTooDeep {
                            limit: limits.max_tree_depth,
                        });
                    }
                    pending.push((id, depth + 1));
                }
                _ => {}
            }
        }
    }
    Ok(pages)
}

/// The page's resources as `pdf-extract` finds them: its own, or the first
/// found up its `Parent` chain — which is checked to end, and within the
/// depth limit, since `pdf-extract` follows it without a guard.
fn inherited_resources<'d>(
    doc: &'d Document,
    page: &'d Dictionary,
    limits: &PdfLimits,
) -> Result<Option<&'d Dictionary>, PdfError> {
    let mut visited: Vec<ObjectId> = Vec::new();
    let mut resources = None;
    let mut node = page;
    loop {
        if resources.is_none() {
            resources = node
                .get_deref(b"Resources", doc)
                .and_then(Object::as_dict)
                .ok();
        }
        let Ok(parent) = node.get(b"Parent").and_then(Object::as_reference) else {
            return Ok(resources);
        };
        let Ok(parent_node) = doc.get_dictionary(parent) else {
            return Ok(resources);
        };
        if visited.contains(&parent) {
            return Err(PdfError::PageTreeLoop { object: parent });
        }
        if visited.len() == limits.max_tree_depth {
            return Err(PdfError::PageTreeTooDeep {
                limit: limits.max_tree_depth,
            });
        }
        visited.push(parent);
        node = parent_node;
    }
}

struct FormCheck<'d> {
    doc: &'d Document,
    limits: &'d PdfLimits,
    /// Forms already found sound, with the resources they were drawn with
    /// (by address: a form without resources of its own uses its caller's).
    checked: HashSet<(ObjectId, usize)>,
}

impl<'d> FormCheck<'d> {
    /// Checks every form XObject named in `resources`.
    fn check_resources(&mut self, resources: Option<&'d Dictionary>) -> Result<(), PdfError> {
        let mut path = Vec::new();
        for (id, stream) in self.xobjects(resources) {
            self.check_form(id, stream, resources, &mut path)?;
        }
        Ok(())
    }

    /// The stream XObjects of a resource dictionary.
    fn xobjects(&self, resources: Option<&'d Dictionary>) -> Vec<(ObjectId, &'d Stream)> {
        let Some(xobjects) = resources
            .and_then(|r| r.get_deref(b"XObject", self.doc).ok())
            .and_then(|x| x.as_dict().ok())
        else {
            return Vec::new();
        };
        xobjects
            .iter()
            .filter_map(|(_, object)| self.stream(object))
            .collect()
    }

    fn stream(&self, object: &'d Object) -> Option<(ObjectId, &'d Stream)> {
        match self.doc.dereference(object) {
            Ok((Some(id), Object::Stream(stream))) => Some((id, stream)),
            _ => None,
        }
    }

    /// Follows the `Do` operators of a form's content into the forms they
    /// draw, depth first, refusing a form met again on its own path.
    fn check_form(
        &mut self,
        id: ObjectId,
        form: &'d Stream,
        caller_resources: Option<&'d Dictionary>,
        path: &mut Vec<ObjectId>,
    ) -> Result<(), PdfError> {
        if !matches!(
            form.dict.get(b"Subtype").and_then(Object::as_name),
            Ok(b"Form")
        ) {
            return Ok(());
        }
        if path.contains(&id) {
            return Err(PdfError::FormLoop { object: id });
        }
        if path.len() == self.limits.max_form_depth {
            return Err(PdfError::FormsTooDeep {
                limit: self.limits.max_form_depth,
            });
        }
        let resources = form
            .dict
            .get_deref(b"Resources", self.doc)
            .and_then(Object::as_dict)
            .ok()
            .or(caller_resources);
        let key = (id, resources.map_or(0, |r| std::ptr::from_ref(r) as usize));
        if self.checked.contains(&key) {
            return Ok(());
        }
        // Decoded as `pdf-extract` does; content it cannot decode, it
        // cannot follow either.
        let bytes = form
            .decompressed_content()
            .unwrap_or_else(|_| form.content.clone());
        let Ok(content) = Content::decode(&bytes) else {
            return Ok(());
        };
        let named = resources
            .and_then(|r| r.get_deref(b"XObject", self.doc).ok())
            .and_then(|x| x.as_dict().ok());
        path.push(id);
        for operation in content.operations.iter().filter(|op| op.operator == "Do") {
            let drawn = operation
                .operands
                .first()
                .and_then(|name| name.as_name().ok())
                .and_then(|name| named?.get(name).ok())
                .and_then(|object| self.stream(object));
            if let Some((child, stream)) = drawn {
                self.check_form(child, stream, resources, path)?;
            }
        }
        path.pop();
        self.checked.insert(key);
        Ok(())
    }
}
