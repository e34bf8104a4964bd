//! Phrases that format-specific decoders of go-sisimai (`lhost/via-*.go`,
//! `rhost/for-*.go` at ed142de) map to a reason, flattened into one table.
//!
//! Copyright (C) 2024-2025 azumakuniyuki and sisimai development team.
//! Distributed under the BSD 2-Clause License.

/// (written by the bounce's own MTA format, reason, lower-cased phrase),
/// in upstream file order; `false` marks a remote provider's phrase.
pub(super) const KNOWN: &[(bool, &str, &str)] = &[
    (true, "filtered", "mail delivery failed... user unknown"), // via-biglobe.go
    (true, "mailboxfull", "the number of messages in recipient's mailbox exceeded the local limit."), // via-biglobe.go
    (true, "hostunknown", "no such domain."), // via-courier.go
    (true, "systemerror", "this domain's dns violates rfc 1035."), // via-courier.go
    (true, "networkerror", "dns lookup failed."), // via-courier.go
    (true, "filtered", "cannot route mail to user"), // via-domino.go
    (true, "systemerror", "several matches found in domino directory"), // via-domino.go
    (true, "userunknown", "not listed in domino directory"), // via-domino.go
    (true, "userunknown", "not listed in public name & address book"), // via-domino.go
    (true, "userunknown", "no se encuentra en el directorio de domino"), // via-domino.go
    (true, "userunknown", "non répertorié dans l'annuaire domino"), // via-domino.go
    (true, "userunknown", "domino ディレクトリには見つかりません"), // via-domino.go
    (true, "expired", "could not deliver for the last"), // via-dragonfly.go
    (true, "hostunknown", "dns lookup failure: host"), // via-dragonfly.go
    (true, "mesgtoobig", "mail size limit exceeded"), // via-einsundeins.go
    (true, "userunknown", "000c05a6"), // via-exchange2003.go
    (true, "filtered", "000c0595"), // via-exchange2003.go
    (true, "systemerror", "00010256"), // via-exchange2003.go
    (true, "systemerror", "000d06b5"), // via-exchange2003.go
    (true, "networkerror", "00120270"), // via-exchange2003.go
    (true, "contenterror", "00050311"), // via-exchange2003.go
    (true, "contenterror", "000502cc"), // via-exchange2003.go
    (true, "securityerror", "000b0981"), // via-exchange2003.go
    (true, "onhold", "000b099c"), // via-exchange2003.go
    (true, "onhold", "000b09aa"), // via-exchange2003.go
    (true, "onhold", "000b09b6"), // via-exchange2003.go
    (true, "userunknown", "user not found"), // via-exim.go
    (true, "hostunknown", "all host address lookups failed permanently"), // via-exim.go
    (true, "hostunknown", "all relevant mx records point to non-existent hosts"), // via-exim.go
    (true, "hostunknown", "unrouteable address"), // via-exim.go
    (true, "mailboxfull", "mailbox is full"), // via-exim.go
    (true, "mailboxfull", "error: quota exceed"), // via-exim.go
    (true, "notaccept", "an mx or srv record indicated no smtp service"), // via-exim.go
    (true, "notaccept", "no host found for existing smtp connection"), // via-exim.go
    (true, "syntaxerror", "angle-brackets nested too deep"), // via-exim.go
    (true, "syntaxerror", "expected word or \"<\""), // via-exim.go
    (true, "syntaxerror", "domain missing in source-routed address"), // via-exim.go
    (true, "syntaxerror", "malformed address:"), // via-exim.go
    (true, "systemerror", "delivery to file forbidden"), // via-exim.go
    (true, "systemerror", "delivery to pipe forbidden"), // via-exim.go
    (true, "systemerror", "local delivery failed"), // via-exim.go
    (true, "systemerror", "lmtp error after"), // via-exim.go
    (true, "contenterror", "too many \"received\" headers"), // via-exim.go
    (true, "expired", "retry timeout exceeded"), // via-exim.go
    (true, "expired", "no action is required on your part"), // via-exim.go
    (true, "expired", "retry time not reached for any host after a long failure period"), // via-exim.go
    (true, "expired", "all hosts have been failing for a long time and were last tried"), // via-exim.go
    (true, "expired", "delay reason: "), // via-exim.go
    (true, "expired", "has been frozen"), // via-exim.go
    (true, "expired", "was frozen on arrival by "), // via-exim.go
    (true, "expired", "your message was not delivered within"), // via-ezweb.go
    (true, "mailboxfull", "the user(s) account is temporarily over quota"), // via-ezweb.go
    (true, "onhold", "each of the following recipients was rejected by a remote mail server"), // via-ezweb.go
    (true, "suspend", "the user(s) account is disabled."), // via-ezweb.go
    (true, "suspend", "the user(s) account is temporarily limited."), // via-ezweb.go
    (true, "rejected", "are not member"), // via-fml.go
    (true, "rejected", "not member article from"), // via-fml.go
    (true, "rejected", "reject mail"), // via-fml.go
    (true, "rejected", "spam mail from a spammer is rejected"), // via-fml.go
    (true, "systemerror", "fml system error message"), // via-fml.go
    (true, "systemerror", "loop alert:"), // via-fml.go
    (true, "systemerror", "loop back warning:"), // via-fml.go
    (true, "systemerror", "warning: unix from loop"), // via-fml.go
    (true, "securityerror", "security alert"), // via-fml.go
    (true, "rejected", "header may cause mail loop"), // via-fml.go
    (true, "rejected", "reject mail from"), // via-fml.go
    (true, "rejected", "reject spammers:"), // via-fml.go
    (true, "rejected", "you are not a member of this mailing list"), // via-fml.go
    (true, "systemerror", "has detected a loop condition so that"), // via-fml.go
    (true, "systemerror", "duplicated message-id"), // via-fml.go
    (true, "securityerror", "security alert:"), // via-fml.go
    (true, "expired", "dns error: could not contact dns servers"), // via-gmail.go
    (true, "expired", "delivery to the following recipient has been delayed"), // via-gmail.go
    (true, "expired", "the recipient server did not accept our requests to connect"), // via-gmail.go
    (true, "hostunknown", "dns error: domain name not found"), // via-gmail.go
    (true, "hostunknown", "dns error: dns server returned answer with no data"), // via-gmail.go
    (true, "expired", "delivery retry timeout exceeded"), // via-gmx.go
    (true, "networkerror", "had no relevant answers."), // via-googleworkspace.go
    (true, "networkerror", "responded with code nxdomain"), // via-googleworkspace.go
    (true, "userunknown", "because the address couldn't be found. check for typos or unnecessary spaces and try again."), // via-googleworkspace.go
    (true, "hostunknown", "unknown host"), // via-imailserver.go
    (true, "userunknown", "unknown user"), // via-imailserver.go
    (true, "userunknown", "invalid final delivery userid"), // via-imailserver.go
    (true, "mailboxfull", "user mailbox exceeds allowed size"), // via-imailserver.go
    (true, "virusdetected", "requested action not taken: virus detected"), // via-imailserver.go
    (true, "spamdetected", "blacklisted url in message"), // via-imailserver.go
    (true, "expired", "delivery failed"), // via-imailserver.go
    (true, "mailboxfull", "as their mailbox is full"), // via-kddi.go
    (true, "norelaying", "due to the following smtp relay error"), // via-kddi.go
    (true, "hostunknown", "as the remote domain doesnt exist"), // via-kddi.go
    (true, "hostunknown", "illegal host/domain name found"), // via-messagingserver.go
    (true, "networkerror", "message has exceeded maximum hop count"), // via-notes.go
    (true, "userunknown", "user not listed in public name & address book"), // via-notes.go
    (true, "userunknown", "ディレクトリのリストにありません"), // via-notes.go
    (true, "expired", "envelope expired"), // via-opensmtpd.go
    (true, "securityerror", "could not retrieve credentials"), // via-opensmtpd.go
    (true, "hostunknown", "invalid domain name"), // via-opensmtpd.go
    (true, "hostunknown", "domain does not exist"), // via-opensmtpd.go
    (true, "networkerror", "address family mismatch on destination mxs"), // via-opensmtpd.go
    (true, "networkerror", "all routes to destination blocked"), // via-opensmtpd.go
    (true, "networkerror", "bad dns lookup error code"), // via-opensmtpd.go
    (true, "networkerror", "could not retrieve source address"), // via-opensmtpd.go
    (true, "networkerror", "loop detected"), // via-opensmtpd.go
    (true, "networkerror", "network error on destination mxs"), // via-opensmtpd.go
    (true, "networkerror", "no valid route to remote mx"), // via-opensmtpd.go
    (true, "networkerror", "no valid route to destination"), // via-opensmtpd.go
    (true, "networkerror", "temporary failure in mx lookup"), // via-opensmtpd.go
    (true, "notaccept", "destination seem to reject all mails"), // via-opensmtpd.go
    (true, "notaccept", "no mx found for domain"), // via-opensmtpd.go
    (true, "notaccept", "no mx found for destination"), // via-opensmtpd.go
    (true, "exceedlimit", "the message exeeded the maximum size the user accepts"), // via-qmail.go
    (true, "suspend", "mailaddress is administrativly disabled"), // via-qmail.go
    (true, "suspend", "mailaddress is administrativley disabled"), // via-qmail.go
    (true, "suspend", "mailaddress is administratively disabled"), // via-qmail.go
    (true, "suspend", "mailaddress is administrativeley disabled"), // via-qmail.go
    (true, "systemerror", "automatic homedir creator crashed"), // via-qmail.go
    (true, "systemerror", "illegal value in ldap attribute"), // via-qmail.go
    (true, "systemerror", "ldap attribute is not given but mandatory"), // via-qmail.go
    (true, "systemerror", "timeout while performing search on ldap server"), // via-qmail.go
    (true, "systemerror", "too many results returned but needs to be unique"), // via-qmail.go
    (true, "systemerror", "permanent error while executing qmail-forward"), // via-qmail.go
    (true, "systemerror", "temporary error in automatic homedir creation"), // via-qmail.go
    (true, "systemerror", "temporary error while executing qmail-forward"), // via-qmail.go
    (true, "systemerror", "temporary failure in ldap lookup"), // via-qmail.go
    (true, "systemerror", "unable to contact ldap server"), // via-qmail.go
    (true, "systemerror", "unable to login into ldap server, bad credentials"), // via-qmail.go
    (true, "userunknown", "sorry, no mailbox here by that name"), // via-qmail.go
    (true, "hostunknown", "sorry, i couldn't find any host"), // via-qmail.go
    (true, "mailboxfull", "disk quota exceeded"), // via-qmail.go
    (true, "mesgtoobig", "message size exceeds fixed maximum message size:"), // via-qmail.go
    (true, "networkerror", "sorry, i wasn't able to establish an smtp connection"), // via-qmail.go
    (true, "networkerror", "sorry. although i'm listed as a best-preference mx or a for that host"), // via-qmail.go
    (true, "notaccept", "sorry, i couldn't find a mail exchanger or ip address"), // via-qmail.go
    (true, "systemerror", "bad interpreter: no such file or directory"), // via-qmail.go
    (true, "systemerror", "system error"), // via-qmail.go
    (true, "systemerror", "unable to"), // via-qmail.go
    (true, "systemfull", "requested action not taken: mailbox unavailable (not enough free space)"), // via-qmail.go
    (true, "userunknown", "no mailbox here by that name"), // via-qmail.go
    (true, "userunknown", "550 - requested action not taken: no such user here"), // via-verizon.go
    (true, "userunknown", "no valid recipients"), // via-verizon.go
    (true, "expired", "host not reachable"), // via-zoho.go
    (false, "hostunknown", "host or domain name not found"), // for-aol.go
    (false, "notaccept", "type=mx: malformed or unexpected name server reply"), // for-aol.go
    (false, "authfailure", "s dmarc policy"), // for-apple.go
    (false, "authfailure", "blocked for failing both spf and dkim autentication checks"), // for-apple.go
    (false, "blocked", "rejected due to having a domain present in the spamhaus"), // for-apple.go
    (false, "blocked", "rejected due to listing in spamhaus"), // for-apple.go
    (false, "blocked", "blocked - see https:"), // for-apple.go
    (false, "hasmoved", "recipient no longer on server"), // for-apple.go
    (false, "mailboxfull", "user is over quota"), // for-apple.go
    (false, "norelaying", "relay access denied"), // for-apple.go
    (false, "notaccept", "host/domain does not accept mail"), // for-apple.go
    (false, "policyviolation", "due to local policy"), // for-apple.go
    (false, "rejected", "sender address rejected"), // for-apple.go
    (false, "speeding", "due to excessive volume"), // for-apple.go
    (false, "userunknown", "inactive email address"), // for-apple.go
    (false, "userunknown", "user does not exist"), // for-apple.go
    (false, "userunknown", "unknown or illegal alias"), // for-apple.go
    (false, "blocked", "cox too many bad commands from"), // for-cox.go
    (false, "blocked", "too many invalid recipients"), // for-cox.go
    (false, "requireptr", "dns check failure - try again later"), // for-cox.go
    (false, "requireptr", "rejected - no rdns"), // for-cox.go
    (false, "policyviolation", "esmtp no data before greeting"), // for-cox.go
    (false, "policyviolation", "attachment extension is forbidden"), // for-cox.go
    (false, "rejected", "sender rejected"), // for-cox.go
    (false, "systemerror", "esmtp server temporarily not available"), // for-cox.go
    (false, "toomanyconn", "too many sessions from"), // for-cox.go
    (false, "toomanyconn", "requested action aborted: try again later"), // for-cox.go
    (false, "toomanyconn", "message threshold exceeded"), // for-cox.go
    (false, "userunknown", "recipient rejected"), // for-cox.go
    (false, "authfailure", "spf/dns de votre nom de domaine"), // for-franceptt.go
    (false, "blocked", "rbl reject"), // for-godaddy.go
    (false, "blocked", "www.spamhaus.org/query/bl?ip="), // for-godaddy.go
    (false, "expired", "has been in the queue too long"), // for-godaddy.go
    (false, "expired", "delivery timeout"), // for-godaddy.go
    (false, "mailboxfull", "account storage limit"), // for-godaddy.go
    (false, "spamdetected", "message rejected for spam or virus content"), // for-godaddy.go
    (false, "suspend", "account disabled"), // for-godaddy.go
    (false, "systemerror", "message is looping"), // for-godaddy.go
    (false, "userunknown", "recipient not found"), // for-godaddy.go
    (false, "userunknown", "account does not exist"), // for-godaddy.go
    (false, "authfailure", "the spf record of the sending domain"), // for-google.go
    (false, "authfailure", "senders to authenticate with either spf or dkim"), // for-google.go
    (false, "authfailure", "fails to pass spf checks for an spf record with a hard fail"), // for-google.go
    (false, "authfailure", "has an spf record with a hard fail policy"), // for-google.go
    (false, "authfailure", "is not accepted due to domain's dmarc policy"), // for-google.go
    (false, "authfailure", "fails to pass authentication checks"), // for-google.go
    (false, "authfailure", "senders to authenticate with spf"), // for-google.go
    (false, "authfailure", "senders to authenticate their email with spf"), // for-google.go
    (false, "authfailure", "senders to authenticate their email with dkim"), // for-google.go
    (false, "authfailure", "senders to authenticate with dkim"), // for-google.go
    (false, "authfailure", "aligned with either the authenticated spf or dkim"), // for-google.go
    (false, "badreputation", "very low reputation of the sending ip address"), // for-google.go
    (false, "badreputation", "very low reputation of the sending domain"), // for-google.go
    (false, "badreputation", "due to the very low reputation of the sending ip address"), // for-google.go
    (false, "badreputation", "due to the very low reputation of the sending domain"), // for-google.go
    (false, "blocked", "ip not in whitelist for rcpt domain"), // for-google.go
    (false, "blocked", "try again later, closing connection."), // for-google.go
    (false, "blocked", "empty helo/ehlo argument not allowed"), // for-google.go
    (false, "blocked", "helo/ehlo argument is invalid"), // for-google.go
    (false, "blocked", "an unusual rate of unsolicited mail"), // for-google.go
    (false, "blocked", "an unusual rate of mail"), // for-google.go
    (false, "exceedlimit", "exceeded google's message size limits"), // for-google.go
    (false, "exceedlimit", "exceeds google's limit of limit attachments."), // for-google.go
    (false, "exceedlimit", "your message exceeded google's message header size limits"), // for-google.go
    (false, "exceedlimit", "bytes per individual header size"), // for-google.go
    (false, "exceedlimit", "exceeds google's header name limit of"), // for-google.go
    (false, "exceedlimit", "exceeds google's message header size limit"), // for-google.go
    (false, "expired", "connection expired"), // for-google.go
    (false, "expired", "timeout - closing connection"), // for-google.go
    (false, "failedstarttls", "must issue a starttls command first"), // for-google.go
    (false, "failedstarttls", "starttls may not be repeated"), // for-google.go
    (false, "failedstarttls", "tls required for rcpt domain"), // for-google.go
    (false, "failedstarttls", "senders to use tls/ssl for smtp"), // for-google.go
    (false, "mailboxfull", "inbox is out of storage space"), // for-google.go
    (false, "mailboxfull", "inbox is out of storage space and inactive"), // for-google.go
    (false, "mailboxfull", "is over quota"), // for-google.go
    (false, "mailboxfull", "email quota exceeded"), // for-google.go
    (false, "mesgtoobig", "exceeded google's message size limits"), // for-google.go
    (false, "mesgtoobig", "exceeds google's message size limit of"), // for-google.go
    (false, "networkerror", "message exceeded 50 hops"), // for-google.go
    (false, "norelaying", "mail relay denied"), // for-google.go
    (false, "norelaying", "invalid credentials for relay"), // for-google.go
    (false, "norelaying", "is not authorized to send email directly to our servers"), // for-google.go
    (false, "notcompliantrfc", "missing a valid address in the from: header"), // for-google.go
    (false, "notcompliantrfc", "multiple addresses in from: header are not accepted"), // for-google.go
    (false, "notcompliantrfc", "is not rfc 5322 compliant"), // for-google.go
    (false, "notcompliantrfc", "missing a valid message-id: header"), // for-google.go
    (false, "notcompliantrfc", "contains a unicode character in a disallowed header"), // for-google.go
    (false, "notcompliantrfc", "encoded-word syntax is not permitted"), // for-google.go
    (false, "notcompliantrfc", "is not a valid rfc 5321 address"), // for-google.go
    (false, "notcompliantrfc", "mail message is malformed"), // for-google.go
    (false, "policyviolation", "illegal attachment on your message"), // for-google.go
    (false, "policyviolation", "blocked because its content presents a potential security issue"), // for-google.go
    (false, "policyviolation", "you are sending to (or from) has a policy that prohibited"), // for-google.go
    (false, "policyviolation", "sending messages with the same message-id:"), // for-google.go
    (false, "rejected", "mail sending denied"), // for-google.go
    (false, "rejected", "unauthenticated email is not accepted"), // for-google.go
    (false, "requireptr", "does not have a ptr record"), // for-google.go
    (false, "requireptr", "have a ptr record, or the ptr record"), // for-google.go
    (false, "requireptr", "does not meet ipv6 sending guidelines regarding ptr records and authentication"), // for-google.go
    (false, "requireptr", "does not match the ip address of the hostname"), // for-google.go
    (false, "securityerror", "too many login attempts"), // for-google.go
    (false, "securityerror", "cannot decode response"), // for-google.go
    (false, "securityerror", "no identity changes permitted"), // for-google.go
    (false, "securityerror", "authentication required."), // for-google.go
    (false, "securityerror", "application-specific password required"), // for-google.go
    (false, "securityerror", "please log in with your web browser"), // for-google.go
    (false, "securityerror", "please log in through your web browser"), // for-google.go
    (false, "securityerror", "username and password not accepted"), // for-google.go
    (false, "spamdetected", "due to the nature of the content or the links within"), // for-google.go
    (false, "spamdetected", "likely unsolicited mail"), // for-google.go
    (false, "speeding", "is receiving mail too quickly"), // for-google.go
    (false, "speeding", "peak smtp relay limit exceeded for customer"), // for-google.go
    (false, "speeding", "rate that prevents additional messages from being delivered"), // for-google.go
    (false, "speeding", "daily sending quota exceeded"), // for-google.go
    (false, "speeding", "daily user sending limit exceeded"), // for-google.go
    (false, "speeding", "daily smtp relay limit exceeded for"), // for-google.go
    (false, "speeding", "daily smtp relay sending limit exceeded for"), // for-google.go
    (false, "speeding", "this mail has been rate limited"), // for-google.go
    (false, "suspend", "account that you tried to reach is disabled"), // for-google.go
    (false, "suspend", "account that you tried to reach is inactive"), // for-google.go
    (false, "syntaxerror", "smtp protocol violation"), // for-google.go
    (false, "syntaxerror", "optional argument not permitted"), // for-google.go
    (false, "syntaxerror", "syntax error"), // for-google.go
    (false, "syntaxerror", "too many unrecognized commands, goodbye"), // for-google.go
    (false, "syntaxerror", "unimplemented command"), // for-google.go
    (false, "syntaxerror", "unrecognized command"), // for-google.go
    (false, "syntaxerror", "bad sequence of commands"), // for-google.go
    (false, "syntaxerror", "ehlo/helo first"), // for-google.go
    (false, "syntaxerror", "mail first"), // for-google.go
    (false, "syntaxerror", "rcpt first"), // for-google.go
    (false, "syntaxerror", "no data after bdat"), // for-google.go
    (false, "syntaxerror", "unrecognized authentication type"), // for-google.go
    (false, "syntaxerror", "xoauth is no longer supported"), // for-google.go
    (false, "syntaxerror", "too many unauthenticated commands"), // for-google.go
    (false, "systemerror", "temporary system problem"), // for-google.go
    (false, "systemerror", "server busy"), // for-google.go
    (false, "systemerror", "multiple destination domains per transaction is unsupported"), // for-google.go
    (false, "systemerror", "mail server has temporarily rejected this message"), // for-google.go
    (false, "systemerror", "mail server temporarily rejected message"), // for-google.go
    (false, "systemerror", "domain policy size per transaction exceeded"), // for-google.go
    (false, "systemerror", "cannot authenticate due to temporary system problem"), // for-google.go
    (false, "toomanyconn", "your message has too many recipients"), // for-google.go
    (false, "toomanyconn", "too many recipients for this sender"), // for-google.go
    (false, "userunknown", "the email account that you tried to reach does not exist"), // for-google.go
    (false, "userunknown", "we weren't able to find the recipient domain"), // for-google.go
    (false, "userunknown", "is not a valid rfc 5321 address"), // for-google.go
    (false, "hostunknown", "responded with code nxdomain"), // for-gsuite.go
    (false, "hostunknown", "domain name not found"), // for-gsuite.go
    (false, "networkerror", "domain name not found"), // for-gsuite.go
    (false, "securityerror", "please turn on smtp authentication in your mail client"), // for-messagelabs.go
    (false, "userunknown", "rejected"), // for-messagelabs.go
    (false, "userunknown", "no such user"), // for-messagelabs.go
    (false, "authfailure", "spf sender invalid - envelope rejected"), // for-mimecast.go
    (false, "authfailure", "dkim sender invalid - envelope rejected"), // for-mimecast.go
    (false, "authfailure", "dmarc sender invalid - envelope rejected"), // for-mimecast.go
    (false, "badreputation", "internal resources are temporarily unavailable"), // for-mimecast.go
    (false, "badreputation", "local ct ip reputation - (reject)"), // for-mimecast.go
    (false, "blocked", "sender address blocked"), // for-mimecast.go
    (false, "blocked", "recipient temporarily unavailable"), // for-mimecast.go
    (false, "blocked", "ip temporarily blacklisted"), // for-mimecast.go
    (false, "expired", "journal messages past the expiration"), // for-mimecast.go
    (false, "failedstarttls", "this route requires encryption (tls)"), // for-mimecast.go
    (false, "failedstarttls", "this route requires tls version 1.2 or greater"), // for-mimecast.go
    (false, "failedstarttls", "this route requires high-strength ciphers"), // for-mimecast.go
    (false, "failedstarttls", "configuration is invalid for this certificate"), // for-mimecast.go
    (false, "mesgtoobig", "maximum email size exceeded"), // for-mimecast.go
    (false, "networkerror", "the incorrect hostname used for inbounds"), // for-mimecast.go
    (false, "networkerror", "mail loop detected"), // for-mimecast.go
    (false, "norelaying", "open relay not allowed"), // for-mimecast.go
    (false, "norelaying", "open relay is not allowed"), // for-mimecast.go
    (false, "notaccept", "account inbounds disabled"), // for-mimecast.go
    (false, "onhold", "account outbounds disabled"), // for-mimecast.go
    (false, "onhold", "hostname is not authorized"), // for-mimecast.go
    (false, "onhold", "journal message past expiration"), // for-mimecast.go
    (false, "policyviolation", "anti-spoofing policy - inbound not allowed"), // for-mimecast.go
    (false, "policyviolation", "rejected by header-based anti-spoofing policy"), // for-mimecast.go
    (false, "policyviolation", "message bounced due to content examination policy"), // for-mimecast.go
    (false, "policyviolation", "host network not allowed"), // for-mimecast.go
    (false, "policyviolation", "host network, not allowed"), // for-mimecast.go
    (false, "rejected", "administrative prohibition envelope blocked"), // for-mimecast.go
    (false, "rejected", "envelope blocked - user entry"), // for-mimecast.go
    (false, "rejected", "envelope blocked - user domain entry"), // for-mimecast.go
    (false, "rejected", "rejected by header-based manually blocked senders - block for manual block"), // for-mimecast.go
    (false, "rejected", "rejected by header-based blocked senders - block policy for header from"), // for-mimecast.go
    (false, "rejected", "envelope rejected - block policy for envelope from address"), // for-mimecast.go
    (false, "securityerror", "incorrect authentication data"), // for-mimecast.go
    (false, "securityerror", "submitter failed to disabled"), // for-mimecast.go
    (false, "securityerror", "submitter failed to authenticate"), // for-mimecast.go
    (false, "systemerror", "unable to process connection at this time"), // for-mimecast.go
    (false, "systemerror", "message ended early"), // for-mimecast.go
    (false, "systemerror", "unable to process command"), // for-mimecast.go
    (false, "systemerror", "unable to process an email at this time"), // for-mimecast.go
    (false, "toomanyconn", "account service is temporarily unavailable"), // for-mimecast.go
    (false, "toomanyconn", "too many recipients"), // for-mimecast.go
    (false, "toomanyconn", "exceeding outbound thread limit"), // for-mimecast.go
    (false, "userunknown", "invalid address"), // for-mimecast.go
    (false, "userunknown", "user unknown"), // for-mimecast.go
    (false, "userunknown", "invalid recipient"), // for-mimecast.go
    (false, "virusdetected", "email rejected due to security policies"), // for-mimecast.go
    (false, "mailboxfull", "552 too much mail data"), // for-nttdocomo.go
    (false, "toomanyconn", "552 too many recipients"), // for-nttdocomo.go
    (false, "syntaxerror", "503 bad sequence of commands"), // for-nttdocomo.go
    (false, "syntaxerror", "504 command parameter not implemented"), // for-nttdocomo.go
    (false, "hostunknown", "the mail could not be delivered to the recipient because the domain is not reachable"), // for-outlook.go
    (false, "userunknown", "requested action not taken: mailbox unavailable"), // for-outlook.go
    (false, "authfailure", "spf check failed"), // for-tencent.go
    (false, "authfailure", "dmarc check failed"), // for-tencent.go
    (false, "blocked", "suspected bounce attacks"), // for-tencent.go
    (false, "blocked", "suspected spam ip"), // for-tencent.go
    (false, "blocked", "connection denied"), // for-tencent.go
    (false, "mesgtoobig", "message too large"), // for-tencent.go
    (false, "rejected", "suspected spam"), // for-tencent.go
    (false, "rejected", "mail is rejected by recipients"), // for-tencent.go
    (false, "speeding", "mailbox unavailable or access denined"), // for-tencent.go
    (false, "suspend", "is a deactivated mailbox"), // for-tencent.go
    (false, "syntaxerror", "bad address syntax"), // for-tencent.go
    (false, "toomanyconn", "ip frequency limited"), // for-tencent.go
    (false, "toomanyconn", "domain frequency limited"), // for-tencent.go
    (false, "toomanyconn", "sender frequency limited"), // for-tencent.go
    (false, "toomanyconn", "connection frequency limited"), // for-tencent.go
    (false, "userunknown", "mailbox not found"), // for-tencent.go
    (false, "authfailure", "yahoo requires all senders to authenticate with either spf or dkim"), // for-yahooinc.go
    (false, "blocked", "because the ip is in spamhaus's list;"), // for-yahooinc.go
    (false, "blocked", "not accepted from ip addresses on spamhaus xbl"), // for-yahooinc.go
    (false, "norelaying", "relaying denied for"), // for-yahooinc.go
    (false, "notcompliantrfc", "headers are not rfc compliant"), // for-yahooinc.go
    (false, "policyviolation", "not accepted for policy reasons"), // for-yahooinc.go
    (false, "rejected", "temporarily deferred due to unexpected volume or user complaints"), // for-yahooinc.go
    (false, "rejected", "due to unresolvable rfc.5321 domain"), // for-yahooinc.go
    (false, "rejected", "will be permanently deferred"), // for-yahooinc.go
    (false, "speeding", "user is receiving mail too quickly"), // for-yahooinc.go
    (false, "suspend", "is no longer valid."), // for-yahooinc.go
    (false, "suspend", "this mailbox is disabled"), // for-yahooinc.go
    (false, "syntaxerror", "syntax error in parameters or arguments"), // for-yahooinc.go
    (false, "toomanyconn", "max message per connection reached"), // for-yahooinc.go
    (false, "userunknown", "dd this user doesn't have a"), // for-yahooinc.go
];
