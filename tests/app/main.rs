//! Tests of the sample web application that owt-portal serves on `[app] port` (OWT's
//! sample app server, spec/owt-compat.md §7): its static files and their content types,
//! refusal of paths leaving the share directory, the JSON calls the page makes (answered
//! through the REST API), and the page itself in headless Chromium.

mod support;

mod browser;
mod calls;
mod files;
