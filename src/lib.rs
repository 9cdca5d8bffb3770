//! Glassbox: make a convolutional network transparent.
pub mod cli;
pub mod engine;
pub mod charts;
