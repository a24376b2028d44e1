//! A test component for another world than docket's: it exports `run`, not
//! `evaluate`, so docket must refuse to publish or load it.

// The generated export glue is unsafe code by nature.
#![allow(unsafe_code)]

wit_bindgen::generate!({
    inline: "
        package test:other@0.1.0;
        world other {
            export run: func() -> u32;
        }
    ",
    world: "other",
});

struct Other;

impl Guest for Other {
    fn run() -> u32 {
        42
    }
}

export!(Other);
