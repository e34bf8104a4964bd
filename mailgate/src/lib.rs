//! Mail and messaging gateway: inbound mail to tickets over IMAP, outbound
//! email over SMTP, SMS over SMPP, fax, open/click tracking, unsubscribe and
//! consent, bounces and delivery receipts.
//!
//! This crate will depend on `crm` only. DSN and auto-reply classification and
//! IMAP sync state will be sans-IO cores with thin tokio drivers.
