//! Cross-crate end-to-end tests (trainer export → runtime evaluation, the CLIs together) live in
//! `tests/`; the helpers they share with the other test crates are in `vpfb-testkit` (tests/kit).
