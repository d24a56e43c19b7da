// Package wikimedia turns Wikimedia's public recent-changes stream
// (https://stream.wikimedia.org/v2/stream/recentchange, server-sent events)
// into clickstream events: a real, live source for the examples.
//
// [Stream] is a server-sent-events client (the WHATWG EventSource rules:
// multi-line data, comments, id and retry fields, CR/LF/CRLF line ends) that
// reconnects with Last-Event-ID and exponential back-off, which the service
// needs: it closes every connection after about 15 minutes. [Parse] and [Map]
// turn one recent change into events; [Feed] ties the two together.
//
// # The mapping
//
// A wiki page is a product, an editor is a user, and writing is shopping.
// Only changes of type "edit" and "new" (page creation) map to events; "log",
// "categorize" and anything else map to none, and so do Wikimedia's canary
// events (meta.domain "canary") and changes without meta.id, a timestamp or a
// user. For a change c:
//
//	every edit or new      page_view   event_id = c.meta.id
//	  by a human (bot=false) that adds bytes (length.new > length.old, a new
//	  page's old length being 0):
//	                       add_to_cart event_id = c.meta.id + "/cart"
//	  and, for a new page: purchase    event_id = c.meta.id + "/purchase",
//	                                   price = bytes added / 100 (one cent a
//	                                   byte), currency EUR
//
// All of one change's events share:
//
//   - event_ts: c.meta.dt (RFC 3339), or c.timestamp (Unix seconds) without it
//   - user_id: "wm_" + the first 16 hex digits of SHA-256(c.user), so no user
//     name or IP address leaves the mapper
//   - page: the path of c.title_url ("/wiki/Some_page"), or "/wiki/" + the
//     escaped title with spaces as underscores
//   - product_id: c.wiki + ":" + the page's title with underscores, e.g.
//     "enwiki:Some_page" (the stream carries no page id)
//   - geo: a rough, illustrative guess from the language sub-domain of
//     c.server_name ("de.wikipedia.org" -> DE, Berlin); none for
//     multilingual projects (commons.wikimedia.org, www.wikidata.org) and
//     languages not in the table
//
// The mapping is a pure function of the change: replaying the same stream
// gives the same events, and a change the server sends again after a
// reconnect gives the same event ids (which the pipeline's dedup drops).
//
// A [Stream] is not safe for concurrent use: call Run once at a time.
package wikimedia
