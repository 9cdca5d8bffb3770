//! Glassbox: make a convolutional network transparent.
pub mod app;
pub mod charts;
pub mod cli;
pub mod engine;
pub mod lesson;
pub mod report;
