//! Phrases that format-specific decoders of go-sisimai (`lhost/via-*.go`,
//! `rhost/for-*.go` at ed142de) map to a reason, flattened into one table.
//!
//! Copyright (C) 2024-2025 azumakuniyuki and sisimai development team.
//! Distributed under the BSD 2-Clause License.

/// (reason, lower-cased phrase), in upstream file order.
pub(super) const KNOWN: &[(&str, &str)] = &[
    ("filtered", "mail delivery failed... user unknown"), // via-biglobe.go
    ("mailboxfull", "the number of messages in recipient's mailbox exceeded the local limit."), // via-biglobe.go
    ("hostunknown", "no such domain."), // via-courier.go
    ("systemerror", "this domain's dns violates rfc 1035."), // via-courier.go
    ("networkerror", "dns lookup failed."), // via-courier.go
    ("filtered", "cannot route mail to user"), // via-domino.go
    ("systemerror", "several matches found in domino directory"), // via-domino.go
    ("userunknown", "not listed in domino directory"), // via-domino.go
    ("userunknown", "not listed in public name & address book"), // via-domino.go
    ("userunknown", "no se encuentra en el directorio de domino"), // via-domino.go
    ("userunknown", "non répertorié dans l'annuaire domino"), // via-domino.go
    ("userunknown", "domino ディレクトリには見つかりません"), // via-domino.go
    ("expired", "could not deliver for the last "), // via-dragonfly.go
    ("hostunknown", "dns lookup failure: host "), // via-dragonfly.go
    ("mesgtoobig", "mail size limit exceeded"), // via-einsundeins.go
    ("userunknown", "000c05a6"), // via-exchange2003.go
    ("filtered", "000c0595"), // via-exchange2003.go
    ("systemerror", "00010256"), // via-exchange2003.go
    ("systemerror", "000d06b5"), // via-exchange2003.go
    ("networkerror", "00120270"), // via-exchange2003.go
    ("contenterror", "00050311"), // via-exchange2003.go
    ("contenterror", "000502cc"), // via-exchange2003.go
    ("securityerror", "000b0981"), // via-exchange2003.go
    ("onhold", "000b099c"), // via-exchange2003.go
    ("onhold", "000b09aa"), // via-exchange2003.go
    ("onhold", "000b09b6"), // via-exchange2003.go
    ("userunknown", "user not found"), // via-exim.go
    ("hostunknown", "all host address lookups failed permanently"), // via-exim.go
    ("hostunknown", "all relevant mx records point to non-existent hosts"), // via-exim.go
    ("hostunknown", "unrouteable address"), // via-exim.go
    ("mailboxfull", "mailbox is full"), // via-exim.go
    ("mailboxfull", "error: quota exceed"), // via-exim.go
    ("notaccept", "an mx or srv record indicated no smtp service"), // via-exim.go
    ("notaccept", "no host found for existing smtp connection"), // via-exim.go
    ("syntaxerror", "angle-brackets nested too deep"), // via-exim.go
    ("syntaxerror", "expected word or \"<\""), // via-exim.go
    ("syntaxerror", "domain missing in source-routed address"), // via-exim.go
    ("syntaxerror", "malformed address:"), // via-exim.go
    ("systemerror", "delivery to file forbidden"), // via-exim.go
    ("systemerror", "delivery to pipe forbidden"), // via-exim.go
    ("systemerror", "local delivery failed"), // via-exim.go
    ("systemerror", "lmtp error after "), // via-exim.go
    ("contenterror", "too many \"received\" headers"), // via-exim.go
    ("expired", "retry timeout exceeded"), // via-exim.go
    ("expired", "no action is required on your part"), // via-exim.go
    ("expired", "retry time not reached for any host after a long failure period"), // via-exim.go
    ("expired", "all hosts have been failing for a long time and were last tried"), // via-exim.go
    ("expired", "delay reason: "), // via-exim.go
    ("expired", "has been frozen"), // via-exim.go
    ("expired", "was frozen on arrival by "), // via-exim.go
    ("expired", "your message was not delivered within "), // via-ezweb.go
    ("mailboxfull", "the user(s) account is temporarily over quota"), // via-ezweb.go
    ("onhold", "each of the following recipients was rejected by a remote mail server"), // via-ezweb.go
    ("suspend", "the user(s) account is disabled."), // via-ezweb.go
    ("suspend", "the user(s) account is temporarily limited."), // via-ezweb.go
    ("rejected", " are not member"), // via-fml.go
    ("rejected", "not member article from "), // via-fml.go
    ("rejected", "reject mail "), // via-fml.go
    ("rejected", "spam mail from a spammer is rejected"), // via-fml.go
    ("systemerror", "fml system error message"), // via-fml.go
    ("systemerror", "loop alert: "), // via-fml.go
    ("systemerror", "loop back warning: "), // via-fml.go
    ("systemerror", "warning: unix from loop"), // via-fml.go
    ("securityerror", "security alert"), // via-fml.go
    ("rejected", " header may cause mail loop"), // via-fml.go
    ("rejected", "reject mail from "), // via-fml.go
    ("rejected", "reject spammers:"), // via-fml.go
    ("rejected", "you are not a member of this mailing list"), // via-fml.go
    ("systemerror", " has detected a loop condition so that"), // via-fml.go
    ("systemerror", "duplicated message-id"), // via-fml.go
    ("systemerror", "loop back warning:"), // via-fml.go
    ("securityerror", "security alert:"), // via-fml.go
    ("expired", "dns error: could not contact dns servers"), // via-gmail.go
    ("expired", "delivery to the following recipient has been delayed"), // via-gmail.go
    ("expired", "the recipient server did not accept our requests to connect"), // via-gmail.go
    ("hostunknown", "dns error: domain name not found"), // via-gmail.go
    ("hostunknown", "dns error: dns server returned answer with no data"), // via-gmail.go
    ("expired", "delivery retry timeout exceeded"), // via-gmx.go
    ("networkerror", " had no relevant answers."), // via-googleworkspace.go
    ("networkerror", " responded with code nxdomain"), // via-googleworkspace.go
    ("userunknown", "because the address couldn't be found. check for typos or unnecessary spaces and try again."), // via-googleworkspace.go
    ("hostunknown", "unknown host"), // via-imailserver.go
    ("userunknown", "unknown user"), // via-imailserver.go
    ("userunknown", "invalid final delivery userid"), // via-imailserver.go
    ("mailboxfull", "user mailbox exceeds allowed size"), // via-imailserver.go
    ("virusdetected", "requested action not taken: virus detected"), // via-imailserver.go
    ("spamdetected", "blacklisted url in message"), // via-imailserver.go
    ("expired", "delivery failed "), // via-imailserver.go
    ("mailboxfull", "as their mailbox is full"), // via-kddi.go
    ("norelaying", "due to the following smtp relay error"), // via-kddi.go
    ("hostunknown", "as the remote domain doesnt exist"), // via-kddi.go
    ("hostunknown", "illegal host/domain name found"), // via-messagingserver.go
    ("networkerror", "message has exceeded maximum hop count"), // via-notes.go
    ("userunknown", "user not listed in public name & address book"), // via-notes.go
    ("userunknown", "ディレクトリのリストにありません"), // via-notes.go
    ("expired", "envelope expired"), // via-opensmtpd.go
    ("securityerror", "could not retrieve credentials"), // via-opensmtpd.go
    ("hostunknown", "invalid domain name"), // via-opensmtpd.go
    ("hostunknown", "domain does not exist"), // via-opensmtpd.go
    ("networkerror", "address family mismatch on destination mxs"), // via-opensmtpd.go
    ("networkerror", "all routes to destination blocked"), // via-opensmtpd.go
    ("networkerror", "bad dns lookup error code"), // via-opensmtpd.go
    ("networkerror", "could not retrieve source address"), // via-opensmtpd.go
    ("networkerror", "loop detected"), // via-opensmtpd.go
    ("networkerror", "network error on destination mxs"), // via-opensmtpd.go
    ("networkerror", "no valid route to remote mx"), // via-opensmtpd.go
    ("networkerror", "no valid route to destination"), // via-opensmtpd.go
    ("networkerror", "temporary failure in mx lookup"), // via-opensmtpd.go
    ("notaccept", "destination seem to reject all mails"), // via-opensmtpd.go
    ("notaccept", "no mx found for domain"), // via-opensmtpd.go
    ("notaccept", "no mx found for destination"), // via-opensmtpd.go
    ("exceedlimit", "the message exeeded the maximum size the user accepts"), // via-qmail.go
    ("suspend", "mailaddress is administrativly disabled"), // via-qmail.go
    ("suspend", "mailaddress is administrativley disabled"), // via-qmail.go
    ("suspend", "mailaddress is administratively disabled"), // via-qmail.go
    ("suspend", "mailaddress is administrativeley disabled"), // via-qmail.go
    ("systemerror", "automatic homedir creator crashed"), // via-qmail.go
    ("systemerror", "illegal value in ldap attribute"), // via-qmail.go
    ("systemerror", "ldap attribute is not given but mandatory"), // via-qmail.go
    ("systemerror", "timeout while performing search on ldap server"), // via-qmail.go
    ("systemerror", "too many results returned but needs to be unique"), // via-qmail.go
    ("systemerror", "permanent error while executing qmail-forward"), // via-qmail.go
    ("systemerror", "temporary error in automatic homedir creation"), // via-qmail.go
    ("systemerror", "temporary error while executing qmail-forward"), // via-qmail.go
    ("systemerror", "temporary failure in ldap lookup"), // via-qmail.go
    ("systemerror", "unable to contact ldap server"), // via-qmail.go
    ("systemerror", "unable to login into ldap server, bad credentials"), // via-qmail.go
    ("userunknown", "sorry, no mailbox here by that name"), // via-qmail.go
    ("hostunknown", "sorry, i couldn't find any host "), // via-qmail.go
    ("mailboxfull", "disk quota exceeded"), // via-qmail.go
    ("mesgtoobig", "message size exceeds fixed maximum message size:"), // via-qmail.go
    ("networkerror", "sorry, i wasn't able to establish an smtp connection"), // via-qmail.go
    ("networkerror", "sorry. although i'm listed as a best-preference mx or a for that host"), // via-qmail.go
    ("notaccept", "sorry, i couldn't find a mail exchanger or ip address"), // via-qmail.go
    ("systemerror", "bad interpreter: no such file or directory"), // via-qmail.go
    ("systemerror", "system error"), // via-qmail.go
    ("systemerror", "unable to"), // via-qmail.go
    ("systemfull", "requested action not taken: mailbox unavailable (not enough free space)"), // via-qmail.go
    ("userunknown", "no mailbox here by that name"), // via-qmail.go
    ("userunknown", "550 - requested action not taken: no such user here"), // via-verizon.go
    ("userunknown", "no valid recipients"), // via-verizon.go
    ("expired", "host not reachable"), // via-zoho.go
    ("hostunknown", "host or domain name not found"), // for-aol.go
    ("notaccept", "type=mx: malformed or unexpected name server reply"), // for-aol.go
    ("authfailure", "s dmarc policy"), // for-apple.go
    ("authfailure", "blocked for failing both spf and dkim autentication checks"), // for-apple.go
    ("blocked", "rejected due to having a domain present in the spamhaus"), // for-apple.go
    ("blocked", "rejected due to listing in spamhaus"), // for-apple.go
    ("blocked", "blocked - see https:
				"), // for-apple.go
    ("hasmoved", "recipient no longer on server"), // for-apple.go
    ("mailboxfull", "user is over quota"), // for-apple.go
    ("norelaying", "relay access denied"), // for-apple.go
    ("notaccept", "host/domain does not accept mail"), // for-apple.go
    ("policyviolation", "due to local policy"), // for-apple.go
    ("rejected", "sender address rejected"), // for-apple.go
    ("speeding", "due to excessive volume"), // for-apple.go
    ("userunknown", "inactive email address"), // for-apple.go
    ("userunknown", "user does not exist"), // for-apple.go
    ("userunknown", "unknown or illegal alias"), // for-apple.go
    ("blocked", "cox too many bad commands from"), // for-cox.go
    ("blocked", "too many invalid recipients"), // for-cox.go
    ("requireptr", "dns check failure - try again later"), // for-cox.go
    ("requireptr", "rejected - no rdns"), // for-cox.go
    ("policyviolation", "esmtp no data before greeting"), // for-cox.go
    ("policyviolation", "attachment extension is forbidden"), // for-cox.go
    ("rejected", "sender rejected"), // for-cox.go
    ("systemerror", "esmtp server temporarily not available"), // for-cox.go
    ("toomanyconn", "too many sessions from"), // for-cox.go
    ("toomanyconn", "requested action aborted: try again later"), // for-cox.go
    ("toomanyconn", "message threshold exceeded"), // for-cox.go
    ("userunknown", "recipient rejected"), // for-cox.go
    ("authfailure", "spf/dns de votre nom de domaine"), // for-franceptt.go
    ("blocked", "rbl reject"), // for-godaddy.go
    ("blocked", "www.spamhaus.org/query/bl?ip="), // for-godaddy.go
    ("expired", "has been in the queue too long"), // for-godaddy.go
    ("expired", "delivery timeout"), // for-godaddy.go
    ("mailboxfull", "account storage limit"), // for-godaddy.go
    ("spamdetected", "message rejected for spam or virus content"), // for-godaddy.go
    ("suspend", "account disabled"), // for-godaddy.go
    ("systemerror", "message is looping"), // for-godaddy.go
    ("userunknown", "recipient not found"), // for-godaddy.go
    ("userunknown", "account does not exist"), // for-godaddy.go
    ("authfailure", "the spf record of the sending domain"), // for-google.go
    ("authfailure", "senders to authenticate with either spf or dkim"), // for-google.go
    ("authfailure", "fails to pass spf checks for an spf record with a hard fail"), // for-google.go
    ("authfailure", "has an spf record with a hard fail policy"), // for-google.go
    ("authfailure", "is not accepted due to domain's dmarc policy"), // for-google.go
    ("authfailure", "fails to pass authentication checks"), // for-google.go
    ("authfailure", "senders to authenticate with spf"), // for-google.go
    ("authfailure", "senders to authenticate their email with spf"), // for-google.go
    ("authfailure", "senders to authenticate their email with dkim"), // for-google.go
    ("authfailure", "senders to authenticate with dkim"), // for-google.go
    ("authfailure", "aligned with either the authenticated spf or dkim"), // for-google.go
    ("badreputation", "very low reputation of the sending ip address"), // for-google.go
    ("badreputation", "very low reputation of the sending domain"), // for-google.go
    ("badreputation", "due to the very low reputation of the sending ip address"), // for-google.go
    ("badreputation", "due to the very low reputation of the sending domain"), // for-google.go
    ("blocked", "ip not in whitelist for rcpt domain"), // for-google.go
    ("blocked", "try again later, closing connection."), // for-google.go
    ("blocked", "empty helo/ehlo argument not allowed"), // for-google.go
    ("blocked", "helo/ehlo argument is invalid"), // for-google.go
    ("blocked", "an unusual rate of unsolicited mail"), // for-google.go
    ("blocked", "an unusual rate of mail"), // for-google.go
    ("exceedlimit", "exceeded google's message size limits"), // for-google.go
    ("exceedlimit", "exceeds google's limit of limit attachments."), // for-google.go
    ("exceedlimit", "your message exceeded google's message header size limits"), // for-google.go
    ("exceedlimit", "bytes per individual header size"), // for-google.go
    ("exceedlimit", "exceeds google's header name limit of"), // for-google.go
    ("exceedlimit", "exceeds google's message header size limit"), // for-google.go
    ("expired", "connection expired"), // for-google.go
    ("expired", "timeout - closing connection"), // for-google.go
    ("failedstarttls", "must issue a starttls command first"), // for-google.go
    ("failedstarttls", "starttls may not be repeated"), // for-google.go
    ("failedstarttls", "tls required for rcpt domain"), // for-google.go
    ("failedstarttls", "senders to use tls/ssl for smtp"), // for-google.go
    ("mailboxfull", "inbox is out of storage space"), // for-google.go
    ("mailboxfull", "inbox is out of storage space and inactive"), // for-google.go
    ("mailboxfull", "is over quota"), // for-google.go
    ("mailboxfull", "email quota exceeded"), // for-google.go
    ("mesgtoobig", "exceeded google's message size limits"), // for-google.go
    ("mesgtoobig", "exceeds google's message size limit of"), // for-google.go
    ("networkerror", "message exceeded 50 hops"), // for-google.go
    ("norelaying", "mail relay denied"), // for-google.go
    ("norelaying", "invalid credentials for relay"), // for-google.go
    ("norelaying", "is not authorized to send email directly to our servers"), // for-google.go
    ("notcompliantrfc", "missing a valid address in the from: header"), // for-google.go
    ("notcompliantrfc", "multiple addresses in from: header are not accepted"), // for-google.go
    ("notcompliantrfc", "is not rfc 5322 compliant"), // for-google.go
    ("notcompliantrfc", "missing a valid message-id: header"), // for-google.go
    ("notcompliantrfc", "contains a unicode character in a disallowed header"), // for-google.go
    ("notcompliantrfc", "encoded-word syntax is not permitted"), // for-google.go
    ("notcompliantrfc", "is not a valid rfc 5321 address"), // for-google.go
    ("notcompliantrfc", "mail message is malformed"), // for-google.go
    ("policyviolation", "illegal attachment on your message"), // for-google.go
    ("policyviolation", "blocked because its content presents a potential security issue"), // for-google.go
    ("policyviolation", "you are sending to (or from) has a policy that prohibited"), // for-google.go
    ("policyviolation", "sending messages with the same message-id:"), // for-google.go
    ("rejected", "mail sending denied"), // for-google.go
    ("rejected", "unauthenticated email is not accepted"), // for-google.go
    ("requireptr", "does not have a ptr record"), // for-google.go
    ("requireptr", " have a ptr record, or the ptr record"), // for-google.go
    ("requireptr", "does not meet ipv6 sending guidelines regarding ptr records and authentication"), // for-google.go
    ("requireptr", "does not match the ip address of the hostname"), // for-google.go
    ("securityerror", "too many login attempts"), // for-google.go
    ("securityerror", "cannot decode response"), // for-google.go
    ("securityerror", "no identity changes permitted"), // for-google.go
    ("securityerror", "authentication required."), // for-google.go
    ("securityerror", "application-specific password required"), // for-google.go
    ("securityerror", "please log in with your web browser"), // for-google.go
    ("securityerror", "please log in through your web browser"), // for-google.go
    ("securityerror", "username and password not accepted"), // for-google.go
    ("spamdetected", "due to the nature of the content or the links within"), // for-google.go
    ("spamdetected", "likely unsolicited mail"), // for-google.go
    ("speeding", "is receiving mail too quickly"), // for-google.go
    ("speeding", "peak smtp relay limit exceeded for customer"), // for-google.go
    ("speeding", "rate that prevents additional messages from being delivered"), // for-google.go
    ("speeding", "daily sending quota exceeded"), // for-google.go
    ("speeding", "daily user sending limit exceeded"), // for-google.go
    ("speeding", "daily smtp relay limit exceeded for"), // for-google.go
    ("speeding", "daily smtp relay sending limit exceeded for"), // for-google.go
    ("speeding", "this mail has been rate limited"), // for-google.go
    ("suspend", "account that you tried to reach is disabled"), // for-google.go
    ("suspend", "account that you tried to reach is inactive"), // for-google.go
    ("syntaxerror", "smtp protocol violation"), // for-google.go
    ("syntaxerror", "optional argument not permitted"), // for-google.go
    ("syntaxerror", "syntax error"), // for-google.go
    ("syntaxerror", "too many unrecognized commands, goodbye"), // for-google.go
    ("syntaxerror", "unimplemented command"), // for-google.go
    ("syntaxerror", "unrecognized command"), // for-google.go
    ("syntaxerror", "bad sequence of commands"), // for-google.go
    ("syntaxerror", "ehlo/helo first"), // for-google.go
    ("syntaxerror", "mail first"), // for-google.go
    ("syntaxerror", "rcpt first"), // for-google.go
    ("syntaxerror", "no data after bdat"), // for-google.go
    ("syntaxerror", "unrecognized authentication type"), // for-google.go
    ("syntaxerror", "xoauth is no longer supported"), // for-google.go
    ("syntaxerror", "too many unauthenticated commands"), // for-google.go
    ("systemerror", "temporary system problem"), // for-google.go
    ("systemerror", "server busy"), // for-google.go
    ("systemerror", "multiple destination domains per transaction is unsupported"), // for-google.go
    ("systemerror", "mail server has temporarily rejected this message"), // for-google.go
    ("systemerror", "mail server temporarily rejected message"), // for-google.go
    ("systemerror", "domain policy size per transaction exceeded"), // for-google.go
    ("systemerror", "cannot authenticate due to temporary system problem"), // for-google.go
    ("toomanyconn", "your message has too many recipients"), // for-google.go
    ("toomanyconn", "too many recipients for this sender"), // for-google.go
    ("userunknown", "the email account that you tried to reach does not exist"), // for-google.go
    ("userunknown", "we weren't able to find the recipient domain"), // for-google.go
    ("userunknown", "is not a valid rfc 5321 address"), // for-google.go
    ("hostunknown", " responded with code nxdomain"), // for-gsuite.go
    ("hostunknown", "domain name not found"), // for-gsuite.go
    ("networkerror", "responded with code nxdomain"), // for-gsuite.go
    ("networkerror", "domain name not found"), // for-gsuite.go
    ("securityerror", "please turn on smtp authentication in your mail client"), // for-messagelabs.go
    ("userunknown", " rejected"), // for-messagelabs.go
    ("userunknown", "no such user"), // for-messagelabs.go
    ("authfailure", "spf sender invalid - envelope rejected"), // for-mimecast.go
    ("authfailure", "dkim sender invalid - envelope rejected"), // for-mimecast.go
    ("authfailure", "dmarc sender invalid - envelope rejected"), // for-mimecast.go
    ("badreputation", "internal resources are temporarily unavailable"), // for-mimecast.go
    ("badreputation", "local ct ip reputation - (reject)"), // for-mimecast.go
    ("blocked", "sender address blocked"), // for-mimecast.go
    ("blocked", "recipient temporarily unavailable"), // for-mimecast.go
    ("blocked", "ip temporarily blacklisted"), // for-mimecast.go
    ("expired", "journal messages past the expiration"), // for-mimecast.go
    ("failedstarttls", "this route requires encryption (tls)"), // for-mimecast.go
    ("failedstarttls", "this route requires tls version 1.2 or greater"), // for-mimecast.go
    ("failedstarttls", "this route requires high-strength ciphers"), // for-mimecast.go
    ("failedstarttls", "configuration is invalid for this certificate"), // for-mimecast.go
    ("mesgtoobig", "maximum email size exceeded"), // for-mimecast.go
    ("networkerror", "the incorrect hostname used for inbounds"), // for-mimecast.go
    ("networkerror", "mail loop detected"), // for-mimecast.go
    ("norelaying", "open relay not allowed"), // for-mimecast.go
    ("norelaying", "open relay is not allowed"), // for-mimecast.go
    ("notaccept", "account inbounds disabled"), // for-mimecast.go
    ("onhold", "account outbounds disabled"), // for-mimecast.go
    ("onhold", "hostname is not authorized"), // for-mimecast.go
    ("onhold", "journal message past expiration"), // for-mimecast.go
    ("policyviolation", "anti-spoofing policy - inbound not allowed"), // for-mimecast.go
    ("policyviolation", "rejected by header-based anti-spoofing policy"), // for-mimecast.go
    ("policyviolation", "message bounced due to content examination policy"), // for-mimecast.go
    ("policyviolation", "host network not allowed"), // for-mimecast.go
    ("policyviolation", "host network, not allowed"), // for-mimecast.go
    ("rejected", "administrative prohibition envelope blocked"), // for-mimecast.go
    ("rejected", "envelope blocked - user entry"), // for-mimecast.go
    ("rejected", "envelope blocked - user domain entry"), // for-mimecast.go
    ("rejected", "rejected by header-based manually blocked senders - block for manual block"), // for-mimecast.go
    ("rejected", "rejected by header-based blocked senders - block policy for header from"), // for-mimecast.go
    ("rejected", "envelope rejected - block policy for envelope from address"), // for-mimecast.go
    ("securityerror", "incorrect authentication data"), // for-mimecast.go
    ("securityerror", "submitter failed to disabled"), // for-mimecast.go
    ("securityerror", "submitter failed to authenticate"), // for-mimecast.go
    ("systemerror", "unable to process connection at this time"), // for-mimecast.go
    ("systemerror", "message ended early"), // for-mimecast.go
    ("systemerror", "unable to process command"), // for-mimecast.go
    ("systemerror", "unable to process an email at this time"), // for-mimecast.go
    ("toomanyconn", "account service is temporarily unavailable"), // for-mimecast.go
    ("toomanyconn", "too many recipients"), // for-mimecast.go
    ("toomanyconn", "exceeding outbound thread limit"), // for-mimecast.go
    ("userunknown", "invalid address"), // for-mimecast.go
    ("userunknown", "user unknown"), // for-mimecast.go
    ("userunknown", "invalid recipient"), // for-mimecast.go
    ("virusdetected", "email rejected due to security policies"), // for-mimecast.go
    ("mailboxfull", "552 too much mail data"), // for-nttdocomo.go
    ("toomanyconn", "552 too many recipients"), // for-nttdocomo.go
    ("syntaxerror", "503 bad sequence of commands"), // for-nttdocomo.go
    ("syntaxerror", "504 command parameter not implemented"), // for-nttdocomo.go
    ("hostunknown", "the mail could not be delivered to the recipient because the domain is not reachable"), // for-outlook.go
    ("userunknown", "requested action not taken: mailbox unavailable"), // for-outlook.go
    ("authfailure", "spf check failed"), // for-tencent.go
    ("authfailure", "dmarc check failed"), // for-tencent.go
    ("blocked", "suspected bounce attacks"), // for-tencent.go
    ("blocked", "suspected spam ip"), // for-tencent.go
    ("blocked", "connection denied"), // for-tencent.go
    ("mesgtoobig", "message too large"), // for-tencent.go
    ("rejected", "suspected spam"), // for-tencent.go
    ("rejected", "mail is rejected by recipients"), // for-tencent.go
    ("speeding", "mailbox unavailable or access denined"), // for-tencent.go
    ("suspend", "is a deactivated mailbox"), // for-tencent.go
    ("syntaxerror", "bad address syntax"), // for-tencent.go
    ("toomanyconn", "ip frequency limited"), // for-tencent.go
    ("toomanyconn", "domain frequency limited"), // for-tencent.go
    ("toomanyconn", "sender frequency limited"), // for-tencent.go
    ("toomanyconn", "connection frequency limited"), // for-tencent.go
    ("userunknown", "mailbox not found"), // for-tencent.go
    ("authfailure", "yahoo requires all senders to authenticate with either spf or dkim"), // for-yahooinc.go
    ("blocked", " because the ip is in spamhaus's list;"), // for-yahooinc.go
    ("blocked", "not accepted from ip addresses on spamhaus xbl"), // for-yahooinc.go
    ("norelaying", "relaying denied for "), // for-yahooinc.go
    ("notcompliantrfc", "headers are not rfc compliant"), // for-yahooinc.go
    ("policyviolation", "not accepted for policy reasons"), // for-yahooinc.go
    ("rejected", "temporarily deferred due to unexpected volume or user complaints"), // for-yahooinc.go
    ("rejected", "due to unresolvable rfc.5321 domain"), // for-yahooinc.go
    ("rejected", " will be permanently deferred"), // for-yahooinc.go
    ("speeding", "user is receiving mail too quickly"), // for-yahooinc.go
    ("suspend", " is no longer valid."), // for-yahooinc.go
    ("suspend", "this mailbox is disabled"), // for-yahooinc.go
    ("syntaxerror", "syntax error in parameters or arguments"), // for-yahooinc.go
    ("toomanyconn", "max message per connection reached"), // for-yahooinc.go
    ("userunknown", "dd this user doesn't have a "), // for-yahooinc.go
];
