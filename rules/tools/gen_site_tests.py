#!/usr/bin/env python3
"""Generates rules/tests/site_<site>.yaml: for every activity of every catalogue site, at
least one request in the shape the site's clients send, with the expected site, activity
and decision. Clean content is allowed; a few cases per site carry a finding to show the
content field is inspected (and, for redactions, how the forwarded body looks)."""
import json, os, sys
from urllib.parse import urlencode
sys.path.insert(0, os.path.dirname(__file__))
import testvalues as tv

def yq(v):
    """JSON is valid YAML; control characters must be escaped for YAML."""
    s = json.dumps(v, ensure_ascii=False)
    return "".join(c if not (0x7f <= ord(c) <= 0x9f) else "\\u%04x" % ord(c) for c in s)

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
J = "application/json"; F = "application/x-www-form-urlencoded"
CARD = tv.group(tv.luhn_complete("4", 16), [4, 4, 4, 4])
AWS = "AKIAZ3MHGQ7XW2KLT5PB"  # fake, format-valid (AWS's own documentation examples are placeholders: not reported)
CASES = {}

def case(site, activity, name, method, url, body=None, ctype=None, action="allow", **expect):
    req = {"method": method, "url": url}
    if ctype:
        req["headers"] = {"content-type": ctype}
    if body is not None:
        req["body"] = body if isinstance(body, str) else (json.dumps(body, ensure_ascii=False) if ctype == J else urlencode(body))
    exp = {"site": site, "activity": activity, "action": action}
    if "forwarded" in expect:
        expect["body"] = expect.pop("forwarded")
    exp.update(expect)
    CASES.setdefault(site, []).append({"name": f"{site} {activity}: {name}", "request": req, "expect": exp})

def js(d): return json.dumps(d, ensure_ascii=False)

# ------------------------------------------------------------------------------------- X
gql = "https://x.com/i/api/graphql/{}/{}"
case("x", "view", "home timeline", "GET", gql.format("HJFjzBgCs16TqxewQOeLNg", "HomeTimeline") + "?variables=%7B%22count%22%3A20%7D")
case("x", "view", "profile page", "GET", "https://x.com/example")
case("x", "login", "onboarding login flow", "POST", "https://api.x.com/1.1/onboarding/task.json?flow_name=login", {"input_flow_data": {"flow_context": {"debug_overrides": {}, "start_location": {"location": "manual_link"}}}}, J)
tweet = lambda t, **v: {"variables": {"tweet_text": t, "dark_request": False, "media": {"media_entities": [], "possibly_sensitive": False}, **v}, "features": {}, "queryId": "bDE2rBtZb3uyrczSZ_pI9g"}
case("x", "post", "CreateTweet, clean", "POST", gql.format("bDE2rBtZb3uyrczSZ_pI9g", "CreateTweet"), tweet("Shipping the new release today 🚀"), J)
case("x", "post", "CreateTweet with another query id (ids rotate)", "POST", gql.format("oB-5XsHNAbjvARJEc8CZFw", "CreateTweet"), tweet("Same operation, new deploy"), J)
case("x", "post", "CreateTweet with an AWS key is blocked", "POST", gql.format("bDE2rBtZb3uyrczSZ_pI9g", "CreateTweet"), tweet(f"debugging, my key is {AWS}"), J, action="block", rules=["block-aws-access-key"], categories=["secret.aws_access_key"])
case("x", "post", "CreateTweet with a card number is redacted", "POST", gql.format("bDE2rBtZb3uyrczSZ_pI9g", "CreateTweet"), tweet(f"pay me back on {CARD} pls"), J, action="redact", rules=["redact-payment-data"], forwarded={"not_contains": [CARD], "contains": [CARD[-4:], "pay me back on"]})
case("x", "post", "CreateTweet whose JSON cannot be decoded is blocked as uninspectable", "POST", gql.format("bDE2rBtZb3uyrczSZ_pI9g", "CreateTweet"), '{"variables":{"tweet_text":"unterminated', J, action="block", rules=["block-uninspectable"], uninspectable=True)
case("x", "post", "CreateNoteTweet (long post)", "POST", gql.format("d2wzUpR4JwKp0r1Dj9p2vg", "CreateNoteTweet"), tweet("A long post " * 40), J)
case("x", "post", "scheduled post", "POST", gql.format("LCVzRQGxOaGnOnYH01NQXg", "CreateScheduledTweet"), {"variables": {"post_tweet_request": {"auto_populate_reply_metadata": False, "status": "Webinar starts in 1h", "exclude_reply_user_ids": [], "media_ids": []}, "execute_at": 1717236000}, "queryId": "LCVzRQGxOaGnOnYH01NQXg"}, J)
case("x", "comment", "CreateTweet reply", "POST", gql.format("bDE2rBtZb3uyrczSZ_pI9g", "CreateTweet"), tweet("Great thread, thanks!", reply={"in_reply_to_tweet_id": "1790123456789012345", "exclude_reply_user_ids": []}), J)
case("x", "comment", "reply with a codename is blocked", "POST", gql.format("bDE2rBtZb3uyrczSZ_pI9g", "CreateTweet"), tweet("wait until you see BLUEHERON", reply={"in_reply_to_tweet_id": "1790123456789012345", "exclude_reply_user_ids": []}), J, action="block", rules=["block-project-codename"])
case("x", "message", "DM new2.json", "POST", "https://x.com/i/api/1.1/dm/new2.json?ext=mediaColor", {"conversation_id": "1490000000000000001-1490000000000000002", "recipient_ids": False, "request_id": "0f1e2d3c-4b5a-6978-8091-a2b3c4d5e6f7", "text": "lunch tomorrow?", "cards_platform": "Web-12", "include_cards": 1}, J)
case("x", "message", "API v2 DM", "POST", "https://api.x.com/2/dm_conversations/with/1490000000000000002/messages", {"text": "see you there"}, J)
case("x", "post", "API v2 tweet with poll", "POST", "https://api.x.com/2/tweets", {"text": "Which editor?", "poll": {"options": ["vim", "emacs"], "duration_minutes": 60}}, J)
case("x", "comment", "API v2 reply", "POST", "https://api.twitter.com/2/tweets", {"text": "agreed", "reply": {"in_reply_to_tweet_id": "1790123456789012345"}}, J)
case("x", "post", "v1.1 statuses/update", "POST", "https://api.twitter.com/1.1/statuses/update.json", {"status": "hello from the API"}, F)
case("x", "comment", "v1.1 statuses/update reply", "POST", "https://api.twitter.com/1.1/statuses/update.json", {"status": "@example thanks", "in_reply_to_status_id": "1790123456789012345"}, F)
case("x", "react", "FavoriteTweet", "POST", gql.format("lI07N6Otwv1PhnEgXILM7A", "FavoriteTweet"), {"variables": {"tweet_id": "1790123456789012345"}, "queryId": "lI07N6Otwv1PhnEgXILM7A"}, J)
case("x", "share", "CreateRetweet", "POST", gql.format("ojPdsZsimiJrUGLR1sjUtA", "CreateRetweet"), {"variables": {"tweet_id": "1790123456789012345", "dark_request": False}, "queryId": "ojPdsZsimiJrUGLR1sjUtA"}, J)
case("x", "follow", "friendships/create", "POST", "https://x.com/i/api/1.1/friendships/create.json", {"include_profile_interstitial_type": "1", "user_id": "783214"}, F)
case("x", "search", "SearchTimeline", "GET", gql.format("nK1dw4oV3k4w5TdtcAdSww", "SearchTimeline") + "?variables=%7B%22rawQuery%22%3A%22rust%22%7D")
case("x", "upload", "media upload INIT", "POST", "https://upload.x.com/i/media/upload.json?command=INIT&total_bytes=52341&media_type=image%2Fjpeg&media_category=tweet_image", "", F)
case("x", "upload", "alt text", "POST", "https://x.com/i/api/1.1/media/metadata/create.json", {"media_id": "1790000000000000000", "alt_text": {"text": "A cat on a keyboard"}}, J)

# ------------------------------------------------------------------------------- Facebook
def fbq(name, variables, doc="7711610262190099"):
    return {"av": "100000000000001", "__user": "100000000000001", "fb_dtsg": "NAcN-fake-dtsg:17:1700000000", "fb_api_caller_class": "RelayModern", "fb_api_req_friendly_name": name, "variables": js(variables), "server_timestamps": "true", "doc_id": doc}
FBG = "https://www.facebook.com/api/graphql/"
composer = lambda t: {"input": {"composer_entry_point": "inline_composer", "source": "WWW", "audience": {"privacy": {"base_state": "FRIENDS"}}, "message": {"ranges": [], "text": t}, "actor_id": "100000000000001", "client_mutation_id": "1"}}
case("facebook", "view", "news feed", "GET", "https://www.facebook.com/")
case("facebook", "view", "feed pagination query", "POST", FBG, fbq("CometNewsFeedPaginationQuery", {"count": 3, "cursor": "abc"}), F)
case("facebook", "login", "login form", "POST", "https://www.facebook.com/login/device-based/regular/login/?login_attempt=1", {"email": "someone", "pass": "x", "lsd": "AVq"}, F)
case("facebook", "post", "ComposerStoryCreateMutation, clean", "POST", FBG, fbq("ComposerStoryCreateMutation", composer("Team offsite was great!")), F)
case("facebook", "post", "composer mutation with an internal URL is redacted", "POST", FBG, fbq("ComposerStoryCreateMutation", composer("notes at https://wiki.corp.example/offsite")), F, action="redact", rules=["redact-internal-addresses"], categories=["corp.internal_url", "corp.internal_host"], forwarded={"not_contains": ["wiki.corp.example"]})
case("facebook", "post", "composer mutation with a marking is blocked", "POST", FBG, fbq("ComposerStoryCreateMutation", composer("CONFIDENTIAL - Q3 numbers attached")), F, action="block", rules=["block-classified-marking"])
case("facebook", "comment", "UFI create comment", "POST", FBG, fbq("useCometUFICreateCommentMutation", {"input": {"feedback_id": "ZmVlZGJhY2s6MTIz", "message": {"ranges": [], "text": "Congrats!"}, "actor_id": "100000000000001", "client_mutation_id": "2"}}), F)
case("facebook", "react", "reaction", "POST", FBG, fbq("CometUFIFeedbackReactMutation", {"input": {"feedback_id": "ZmVlZGJhY2s6MTIz", "feedback_reaction_id": "1635855486666999", "actor_id": "100000000000001"}}), F)
case("facebook", "share", "share mutation", "POST", FBG, fbq("useCometFeedToFeedShareMutation", {"input": {"message": {"text": "worth reading"}, "attachments": []}}), F)
case("facebook", "follow", "follow a page", "POST", FBG, fbq("CometUserFollowMutation", {"input": {"subscribe_location": "PROFILE", "subscribee_id": "100000000000002"}}), F)
case("facebook", "search", "typeahead", "POST", FBG, fbq("useSearchCometGlobalTypeaheadDataSourceQuery", {"query": "rust"}), F)
case("facebook", "message", "basic messaging form", "POST", "https://mbasic.facebook.com/messages/send/?icm=1", {"fb_dtsg": "x", "body": "running late", "send": "Send", "ids[100000000000002]": "100000000000002"}, F)
case("facebook", "message", "Messenger Send API", "POST", "https://graph.facebook.com/v19.0/me/messages", {"recipient": {"id": "1254459154682919"}, "messaging_type": "RESPONSE", "message": {"text": "Thanks for reaching out"}}, J)
case("facebook", "post", "Graph API page feed", "POST", "https://graph.facebook.com/v19.0/102030405060708/feed", {"message": "We are hiring!", "link": "https://example.com/jobs"}, F)
case("facebook", "comment", "Graph API comment", "POST", "https://graph.facebook.com/v19.0/102030405060708_111/comments", {"message": "See our FAQ"}, F)
case("facebook", "upload", "photo upload", "POST", "https://upload.facebook.com/ajax/react_composer/attachments/photo/upload?av=100000000000001", "--X\r\nContent-Disposition: form-data; name=\"farr\"; filename=\"a.jpg\"\r\nContent-Type: image/jpeg\r\n\r\nJFIF\r\n--X--\r\n", "multipart/form-data; boundary=X")

# ------------------------------------------------------------------------------ Instagram
case("instagram", "view", "profile", "GET", "https://www.instagram.com/example/")
case("instagram", "login", "web login", "POST", "https://www.instagram.com/api/v1/web/accounts/login/ajax/", {"username": "example", "enc_password": "#PWD_INSTAGRAM_BROWSER:10:1717236000:AbCd", "optIntoOneTap": "false"}, F)
case("instagram", "comment", "web comment", "POST", "https://www.instagram.com/api/v1/web/comments/3391234567890123456/add/", {"comment_text": "love this 😍", "replied_to_comment_id": ""}, F)
case("instagram", "comment", "web comment with an email is logged", "POST", "https://www.instagram.com/api/v1/web/comments/3391234567890123456/add/", {"comment_text": "DM me or mail collab@example.com"}, F, action="log", rules=["log-email-address"])
case("instagram", "react", "like", "POST", "https://www.instagram.com/api/v1/web/likes/3391234567890123456/like/", "", F)
case("instagram", "follow", "follow", "POST", "https://www.instagram.com/api/v1/friendships/create/25025320/", {"container_module": "profile", "user_id": "25025320"}, F)
case("instagram", "post", "configure with caption", "POST", "https://www.instagram.com/api/v1/media/configure/", {"source_type": "library", "caption": "Sunset at the office", "upload_id": "1717236000000", "disable_comments": "0"}, F)
case("instagram", "message", "direct text", "POST", "https://i.instagram.com/api/v1/direct_v2/threads/broadcast/text/", {"action": "send_item", "thread_ids": "[340282366841710300949128123456789012345]", "text": "see you at 6", "client_context": "6966567895612345678"}, F)
case("instagram", "upload", "photo upload", "POST", "https://i.instagram.com/rupload_igphoto/1717236000000_0_123456789", "\u00ff\u00d8binary", "image/jpeg")
case("instagram", "search", "top search", "GET", "https://www.instagram.com/api/v1/web/search/topsearch/?query=rust")

# -------------------------------------------------------------------------------- Threads
case("threads", "view", "home", "GET", "https://www.threads.net/")
case("threads", "post", "text post", "POST", "https://www.threads.net/api/v1/media/configure_text_only_post/", {"caption": "First thread!", "publish_mode": "text_post", "text_post_app_info": js({"reply_control": 0}), "upload_id": "1717236000000"}, F)
case("threads", "post", "text post with a Stripe key is blocked", "POST", "https://www.threads.com/api/v1/media/configure_text_only_post/", {"caption": "why does sk_live_4eC39HqLyjWDarjtT1zdp7dc fail", "publish_mode": "text_post", "text_post_app_info": js({"reply_control": 0})}, F, action="block", rules=["block-stripe-key"])
case("threads", "comment", "reply", "POST", "https://www.threads.net/api/v1/media/configure_text_only_post/", {"caption": "same here", "publish_mode": "text_post", "text_post_app_info": js({"reply_id": "3391234567890123456_25025320", "reply_control": 0})}, F)
case("threads", "react", "like", "POST", "https://www.threads.net/api/v1/media/3391234567890123456_25025320/like/", "", F)
case("threads", "follow", "follow", "POST", "https://www.threads.net/api/v1/friendships/create/25025320/", "", F)
case("threads", "share", "repost", "POST", "https://www.threads.net/api/v1/repost/create_repost/", {"media_id": "3391234567890123456"}, F)
case("threads", "post", "official API container", "POST", "https://graph.threads.net/v1.0/me/threads", {"media_type": "TEXT", "text": "Posted with the API"}, F)
case("threads", "comment", "official API reply", "POST", "https://graph.threads.net/v1.0/me/threads", {"media_type": "TEXT", "text": "thanks!", "reply_to_id": "17890000000000000"}, F)
case("threads", "upload", "photo upload", "POST", "https://www.threads.net/rupload_igphoto/fb_uploader_1717236000000", "binary", "image/jpeg")
case("threads", "login", "login", "POST", "https://www.threads.net/accounts/login/ajax/", {"username": "example"}, F)

# ------------------------------------------------------------------------------- LinkedIn
share = lambda t: {"visibleToConnectionsOnly": False, "externalAudienceProviders": [], "commentaryV2": {"text": t, "attributes": []}, "origin": "FEED", "allowedCommentersScope": "ALL", "postState": "PUBLISHED", "media": []}
case("linkedin", "view", "feed", "GET", "https://www.linkedin.com/feed/")
case("linkedin", "view", "voyager read", "GET", "https://www.linkedin.com/voyager/api/me")
case("linkedin", "login", "login submit", "POST", "https://www.linkedin.com/checkpoint/lg/login-submit", {"session_key": "someone", "session_password": "x", "loginCsrfParam": "abc"}, F)
case("linkedin", "post", "normShares, clean", "POST", "https://www.linkedin.com/voyager/api/contentcreation/normShares", share("Proud of the team for shipping v2!"), J)
case("linkedin", "post", "normShares with an IBAN is redacted", "POST", "https://www.linkedin.com/voyager/api/contentcreation/normShares", share(f"Donations: {tv.iban('GB', 'WEST12345698765432', True)}"), J, action="redact", rules=["redact-payment-data"], forwarded={"not_contains": [tv.iban('GB', 'WEST12345698765432', True)], "contains": ["Donations: "]})
case("linkedin", "post", "GraphQL share", "POST", "https://www.linkedin.com/voyager/api/graphql?action=execute&queryId=voyagerContentcreationDashShares.279996efa5064c01775d5aff003d9377", {"variables": {"post": {"allowedCommentersScope": "ALL", "commentary": {"text": "Hello network", "attributesV2": []}, "origin": "FEED", "visibilityDataUnion": {"visibilityType": "ANYONE"}}}, "queryId": "voyagerContentcreationDashShares.279996efa5064c01775d5aff003d9377"}, J)
case("linkedin", "comment", "comment", "POST", "https://www.linkedin.com/voyager/api/voyagerSocialDashNormComments?decorationId=com.linkedin.voyager.dash.deco.social.NormComment-43", {"commentary": {"text": "Congratulations!", "attributesV2": []}, "threadUrn": "urn:li:activity:7190000000000000000"}, J)
case("linkedin", "message", "createMessage", "POST", "https://www.linkedin.com/voyager/api/voyagerMessagingDashMessengerMessages?action=createMessage", {"message": {"body": {"attributes": [], "text": "Thanks for connecting"}, "renderContentUnions": [], "conversationUrn": "urn:li:msg_conversation:(urn:li:fsd_profile:ACoAAB1234,2-ZmFrZQ==)", "originToken": "0b5f3c52-2d7a-4f0e-8f11-2a9d7c6e5b4a"}, "mailboxUrn": "urn:li:fsd_profile:ACoAAB1234", "trackingId": "abcdefghijklmnop", "dedupeByClientGeneratedToken": False}, J)
case("linkedin", "message", "createMessage with an SSN is redacted", "POST", "https://www.linkedin.com/voyager/api/voyagerMessagingDashMessengerMessages?action=createMessage", {"message": {"body": {"attributes": [], "text": "my SSN is 212-67-4431 for the form"}, "renderContentUnions": []}, "mailboxUrn": "urn:li:fsd_profile:ACoAAB1234"}, J, action="redact", rules=["redact-national-ids"], forwarded={"not_contains": ["212-67-4431"], "contains": ["4431"]})
case("linkedin", "react", "reaction", "POST", "https://www.linkedin.com/voyager/api/voyagerSocialDashReactions?threadUrn=urn%3Ali%3Aactivity%3A7190000000000000000", {"reactionType": "LIKE"}, J)
case("linkedin", "share", "repost", "POST", "https://www.linkedin.com/voyager/api/feed/dash/reposts", {"rootUrn": "urn:li:activity:7190000000000000000"}, J)
case("linkedin", "follow", "invitation with a note", "POST", "https://www.linkedin.com/voyager/api/voyagerRelationshipsDashMemberRelationships?action=verifyQuotaAndCreateV2", {"invitee": {"inviteeUnion": {"memberProfile": "urn:li:fsd_profile:ACoAAB5678"}}, "customMessage": "We met at the meetup"}, J)
case("linkedin", "upload", "media upload", "PUT", "https://www.linkedin.com/dms-uploads/sp/D4E10AQFakeUpload/uploaded-image/0", "binary", "application/octet-stream")
case("linkedin", "search", "search page", "GET", "https://www.linkedin.com/search/results/people/?keywords=rust")
case("linkedin", "post", "documented API ugcPosts", "POST", "https://api.linkedin.com/v2/ugcPosts", {"author": "urn:li:person:8675309", "lifecycleState": "PUBLISHED", "specificContent": {"com.linkedin.ugc.ShareContent": {"shareCommentary": {"text": "Hello from the API"}, "shareMediaCategory": "NONE"}}, "visibility": {"com.linkedin.ugc.MemberNetworkVisibility": "PUBLIC"}}, J)

# --------------------------------------------------------------------------------- Reddit
case("reddit", "view", "front page", "GET", "https://www.reddit.com/")
case("reddit", "login", "login", "POST", "https://www.reddit.com/login", {"username": "someone", "password": "x"}, F)
case("reddit", "post", "api/submit self post", "POST", "https://oauth.reddit.com/api/submit", {"sr": "rust", "kind": "self", "title": "Async traits finally", "text": "Stabilised in 1.75!", "api_type": "json"}, F)
case("reddit", "share", "crosspost", "POST", "https://oauth.reddit.com/api/submit", {"sr": "programming", "kind": "crosspost", "title": "Interesting discussion", "crosspost_fullname": "t3_1d5xk2q"}, F)
case("reddit", "comment", "api/comment, clean", "POST", "https://oauth.reddit.com/api/comment", {"thing_id": "t3_1d5xk2q", "text": "Nice write-up, thanks.", "api_type": "json"}, F)
case("reddit", "comment", "api/comment with a NINO is redacted", "POST", "https://www.reddit.com/api/comment", {"thing_id": "t1_kq2x9z1", "text": "HMRC lost my NI JG 10 37 59 A again", "api_type": "json"}, F, action="redact", rules=["redact-national-ids"], forwarded={"not_contains": ["JG+10+37+59+A", "JG 10 37 59 A"]})
case("reddit", "comment", "GraphQL CreateComment", "POST", "https://gql-fed.reddit.com/", {"operationName": "CreateComment", "variables": {"input": {"postId": "t3_1d5xk2q", "content": {"markdown": "agreed"}}}, "extensions": {"persistedQuery": {"version": 1, "sha256Hash": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}}}, J)
case("reddit", "comment", "shreddit comment form", "POST", "https://www.reddit.com/svc/shreddit/t3_1d5xk2q/create-comment", {"content": js({"document": [{"e": "par", "c": [{"e": "text", "t": "Same issue here"}]}]}), "mode": "richText", "csrf_token": "abc"}, F)
case("reddit", "message", "private message", "POST", "https://oauth.reddit.com/api/compose", {"to": "example_user", "subject": "hello", "text": "Saw your post, want to chat?", "api_type": "json"}, F)
case("reddit", "message", "chat over Matrix", "PUT", "https://matrix.redditspace.com/_matrix/client/v3/rooms/!abc123:reddit.com/send/m.room.message/m1717236000000.0", {"msgtype": "m.text", "body": "hey!"}, J)
case("reddit", "react", "vote", "POST", "https://oauth.reddit.com/api/vote", {"id": "t3_1d5xk2q", "dir": "1", "rank": "2"}, F)
case("reddit", "follow", "subscribe", "POST", "https://oauth.reddit.com/api/subscribe", {"action": "sub", "sr_name": "rust"}, F)
case("reddit", "upload", "media asset lease", "POST", "https://oauth.reddit.com/api/media/asset.json", {"filepath": "a.png", "mimetype": "image/png"}, F)
case("reddit", "search", "search", "GET", "https://www.reddit.com/search/?q=rust")

# ------------------------------------------------------------------------------- Mastodon
case("mastodon", "view", "home timeline API", "GET", "https://mastodon.social/api/v1/timelines/home?limit=20")
case("mastodon", "view", "web page on a listed instance", "GET", "https://hachyderm.io/@example")
case("mastodon", "login", "oauth token", "POST", "https://mastodon.social/oauth/token", {"grant_type": "password", "client_id": "abc", "username": "someone", "password": "x"}, F)
case("mastodon", "post", "status as form", "POST", "https://mastodon.social/api/v1/statuses", {"status": "Hello fediverse!", "visibility": "public"}, F)
case("mastodon", "post", "status as JSON with poll", "POST", "https://fosstodon.org/api/v1/statuses", {"status": "Tabs or spaces?", "visibility": "public", "poll": {"options": ["tabs", "spaces"], "expires_in": 86400}}, J)
case("mastodon", "post", "status with a GitHub token is blocked", "POST", "https://mastodon.social/api/v1/statuses", {"status": "why does " + tv.github("ghp_") + " not work", "visibility": "public"}, F, action="block", rules=["block-github-token"])
case("mastodon", "post", "poll option carrying a card number is redacted", "POST", "https://fosstodon.org/api/v1/statuses", {"status": "Which card?", "visibility": "unlisted", "poll": {"options": ["none", CARD], "expires_in": 3600}}, J, action="redact", forwarded={"not_contains": [CARD], "json": {"/status": "Which card?"}})
case("mastodon", "comment", "reply (form)", "POST", "https://mastodon.social/api/v1/statuses", {"status": "@alice@mastodon.social thanks!", "in_reply_to_id": "112345678901234567", "visibility": "public"}, F)
case("mastodon", "comment", "reply (JSON)", "POST", "https://hachyderm.io/api/v1/statuses", {"status": "good point", "in_reply_to_id": "112345678901234567", "visibility": "unlisted"}, J)
case("mastodon", "message", "direct visibility (JSON) is a message", "POST", "https://mastodon.social/api/v1/statuses", {"status": "@bob@hachyderm.io are you coming?", "visibility": "direct"}, J)
case("mastodon", "message", "direct visibility (form) is a message", "POST", "https://mastodon.social/api/v1/statuses", {"status": "@bob@hachyderm.io the door code changed", "visibility": "direct", "in_reply_to_id": "112345678901234567"}, F)
case("mastodon", "post", "status on an unlisted instance (API shape, any host)", "POST", "https://social.example.org/api/v1/statuses", {"status": "self-hosted and happy"}, F)
case("mastodon", "message", "direct message on an unlisted instance with a marking is blocked", "POST", "https://toot.example.net/api/v1/statuses", {"status": "INTERNAL ONLY: the reorg slides", "visibility": "direct"}, J, action="block", rules=["block-classified-marking"])
case("mastodon", "react", "favourite", "POST", "https://mastodon.social/api/v1/statuses/112345678901234567/favourite", "", F)
case("mastodon", "share", "reblog", "POST", "https://mastodon.social/api/v1/statuses/112345678901234567/reblog", "", F)
case("mastodon", "follow", "follow", "POST", "https://mastodon.social/api/v1/accounts/109876543210/follow", {"reblogs": "true"}, F)
case("mastodon", "upload", "media with alt text", "POST", "https://mastodon.social/api/v2/media", "--B\r\nContent-Disposition: form-data; name=\"description\"\r\n\r\nA photo of our team\r\n--B\r\nContent-Disposition: form-data; name=\"file\"; filename=\"team.png\"\r\nContent-Type: image/png\r\n\r\n\u0089PNG\r\n--B--\r\n", "multipart/form-data; boundary=B")
case("mastodon", "search", "search", "GET", "https://mastodon.social/api/v2/search?q=rust")

# -------------------------------------------------------------------------------- Bluesky
rec = lambda t, **extra: {"repo": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "collection": "app.bsky.feed.post", "record": {"$type": "app.bsky.feed.post", "text": t, "langs": ["en"], "createdAt": "2024-06-01T10:00:00.000Z", **extra}}
PDS = "https://morel.us-east.host.bsky.network/xrpc/"
case("bluesky", "view", "timeline", "GET", PDS + "app.bsky.feed.getTimeline?limit=30")
case("bluesky", "view", "web app", "GET", "https://bsky.app/profile/example.bsky.social")
case("bluesky", "login", "createSession", "POST", "https://bsky.social/xrpc/com.atproto.server.createSession", {"identifier": "example.bsky.social", "password": "x"}, J)
case("bluesky", "post", "createRecord post, clean", "POST", PDS + "com.atproto.repo.createRecord", rec("gm everyone ☀️"), J)
case("bluesky", "post", "post on a self-hosted PDS (any host)", "POST", "https://pds.example.org/xrpc/com.atproto.repo.createRecord", rec("hello from my own PDS"), J)
text = f"card {CARD} lost, see https://example.com"
start = len(f"card {CARD} lost, see ".encode())
case("bluesky", "post", "post with a card and a link facet is redacted", "POST", PDS + "com.atproto.repo.createRecord",
     rec(text, facets=[{"index": {"byteStart": start, "byteEnd": start + len("https://example.com")}, "features": [{"$type": "app.bsky.richtext.facet#link", "uri": "https://example.com"}]}]), J,
     action="redact", rules=["redact-payment-data"], forwarded={"not_contains": [CARD]})
case("bluesky", "comment", "reply", "POST", PDS + "com.atproto.repo.createRecord", rec("so true", reply={"root": {"uri": "at://did:plc:abc/app.bsky.feed.post/3kxyz", "cid": "bafyreiabc"}, "parent": {"uri": "at://did:plc:abc/app.bsky.feed.post/3kxyz", "cid": "bafyreiabc"}}), J)
case("bluesky", "post", "thread via applyWrites", "POST", PDS + "com.atproto.repo.applyWrites", {"repo": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "writes": [{"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "rkey": "3kabc", "value": {"$type": "app.bsky.feed.post", "text": "1/2 a thread", "createdAt": "2024-06-01T10:00:00.000Z"}}, {"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "rkey": "3kabd", "value": {"$type": "app.bsky.feed.post", "text": "2/2 Project Nightjar!", "createdAt": "2024-06-01T10:00:01.000Z"}}]}, J, action="block", rules=["block-project-codename"])
case("bluesky", "react", "like", "POST", PDS + "com.atproto.repo.createRecord", {"repo": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "collection": "app.bsky.feed.like", "record": {"$type": "app.bsky.feed.like", "subject": {"uri": "at://did:plc:abc/app.bsky.feed.post/3kxyz", "cid": "bafyreiabc"}, "createdAt": "2024-06-01T10:00:00.000Z"}}, J)
case("bluesky", "share", "repost", "POST", PDS + "com.atproto.repo.createRecord", {"repo": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "collection": "app.bsky.feed.repost", "record": {"$type": "app.bsky.feed.repost", "subject": {"uri": "at://did:plc:abc/app.bsky.feed.post/3kxyz", "cid": "bafyreiabc"}, "createdAt": "2024-06-01T10:00:00.000Z"}}, J)
case("bluesky", "follow", "follow", "POST", PDS + "com.atproto.repo.createRecord", {"repo": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "collection": "app.bsky.graph.follow", "record": {"$type": "app.bsky.graph.follow", "subject": "did:plc:abc", "createdAt": "2024-06-01T10:00:00.000Z"}}, J)
case("bluesky", "message", "chat sendMessage", "POST", "https://api.bsky.chat/xrpc/chat.bsky.convo.sendMessage", {"convoId": "3knxyzq2abc2k", "message": {"text": "coffee later?"}}, J)
case("bluesky", "message", "chat sendMessage with a JWT is blocked", "POST", PDS + "chat.bsky.convo.sendMessage", {"convoId": "3knxyzq2abc2k", "message": {"text": "use this: " + tv.jwt()}}, J, action="block", rules=["block-jwt"])
case("bluesky", "upload", "uploadBlob", "POST", PDS + "com.atproto.repo.uploadBlob", "\u0089PNG", "image/png")
case("bluesky", "search", "searchPosts", "GET", "https://api.bsky.app/xrpc/app.bsky.feed.searchPosts?q=rust")

# -------------------------------------------------------------------------------- YouTube
ctx = {"client": {"clientName": "WEB", "clientVersion": "2.20240530.01.00", "hl": "en"}}
case("youtube", "view", "watch page", "GET", "https://www.youtube.com/watch?v=dQw4w9WgXcQ")
case("youtube", "view", "browse", "POST", "https://www.youtube.com/youtubei/v1/browse?prettyPrint=false", {"context": ctx, "browseId": "FEwhat_to_watch"}, J)
case("youtube", "comment", "create_comment", "POST", "https://www.youtube.com/youtubei/v1/comment/create_comment?prettyPrint=false", {"context": ctx, "createCommentParams": "Egtfa0tYZ2Y0S1NQZyoCCABQAQ%3D%3D", "commentText": "Great video!"}, J)
case("youtube", "comment", "create_comment with a private key is blocked", "POST", "https://www.youtube.com/youtubei/v1/comment/create_comment", {"context": ctx, "createCommentParams": "Egtfa0tYZ2Y0S1NQZyoCCABQAQ%3D%3D", "commentText": "my config:\n" + tv.pem("OPENSSH PRIVATE KEY", 4)}, J, action="block", rules=["block-private-key"])
case("youtube", "comment", "reply", "POST", "https://www.youtube.com/youtubei/v1/comment/create_comment_reply", {"context": ctx, "createReplyParams": "EgtkUXc0dzlXZ1hjUSIaVWd6", "commentText": "same!"}, J)
case("youtube", "comment", "live chat", "POST", "https://www.youtube.com/youtubei/v1/live_chat/send_message", {"context": ctx, "params": "Q2lrcUp3b1lWVU5u", "richMessage": {"textSegments": [{"text": "hello chat"}]}, "clientMessageId": "abc123"}, J)
case("youtube", "post", "community post", "POST", "https://www.youtube.com/youtubei/v1/backstage/create_post", {"context": ctx, "createBackstagePostParams": "CioSGFVD", "commentText": "New video on Friday!"}, J)
case("youtube", "react", "like", "POST", "https://www.youtube.com/youtubei/v1/like/like", {"context": ctx, "target": {"videoId": "dQw4w9WgXcQ"}}, J)
case("youtube", "follow", "subscribe", "POST", "https://www.youtube.com/youtubei/v1/subscription/subscribe", {"context": ctx, "channelIds": ["UC38IQsAvIsxxjztdMZQtwHA"], "params": "EgIIAhgA"}, J)
case("youtube", "share", "share panel", "POST", "https://www.youtube.com/youtubei/v1/share/get_share_panel", {"context": ctx, "serializedSharedEntity": "CgtkUXc0dzlXZ1hjUQ%3D%3D"}, J)
case("youtube", "search", "search", "POST", "https://www.youtube.com/youtubei/v1/search", {"context": ctx, "query": "rust async"}, J)
case("youtube", "upload", "studio metadata", "POST", "https://studio.youtube.com/youtubei/v1/upload/createvideo", {"context": ctx, "resourceId": {"scottyResourceId": {"id": "abc"}}, "frontendUploadId": "innertube_studio:1", "initialMetadata": {"title": {"newTitle": "Team demo"}, "description": {"newDescription": "Our sprint demo"}, "privacy": {"newPrivacy": "PRIVATE"}}}, J)

# --------------------------------------------------------------------------------- TikTok
case("tiktok", "view", "for you", "GET", "https://www.tiktok.com/foryou")
case("tiktok", "login", "login", "POST", "https://www.tiktok.com/passport/web/user/login/?aid=1459", {"username": "someone", "password": "x"}, F)
case("tiktok", "comment", "comment publish", "POST", "https://www.tiktok.com/api/comment/publish/?aid=1988&app_name=tiktok_web&device_platform=web_pc", {"aweme_id": "7304809083817774382", "text": "this is hilarious", "text_extra": "[]"}, F)
case("tiktok", "comment", "comment with an internal host is redacted", "POST", "https://www.tiktok.com/api/comment/publish/?aid=1988", {"aweme_id": "7304809083817774382", "text": "deployed it on 10.12.0.7 lol", "text_extra": "[]"}, F, action="redact", rules=["redact-internal-addresses"], forwarded={"not_contains": ["10.12.0.7"]})
case("tiktok", "react", "digg", "POST", "https://www.tiktok.com/api/commit/item/digg/?aweme_id=7304809083817774382&type=1&aid=1988", "", F)
case("tiktok", "follow", "follow", "POST", "https://www.tiktok.com/api/commit/follow/user/?user_id=6812345678901234567&type=1&aid=1988", "", F)
case("tiktok", "share", "repost", "POST", "https://www.tiktok.com/api/repost/item/?aweme_id=7304809083817774382", "", F)
case("tiktok", "post", "Content Posting API", "POST", "https://open.tiktokapis.com/v2/post/publish/video/init/", {"post_info": {"title": "Behind the scenes #team", "privacy_level": "SELF_ONLY", "disable_comment": False}, "source_info": {"source": "PULL_FROM_URL", "video_url": "https://example.com/v.mp4"}}, J)
case("tiktok", "upload", "inbox upload", "POST", "https://open.tiktokapis.com/v2/post/publish/inbox/video/init/", {"source_info": {"source": "FILE_UPLOAD", "video_size": 5000000, "chunk_size": 5000000, "total_chunk_count": 1}}, J)
case("tiktok", "message", "DM as protobuf cannot be inspected and is blocked", "POST", "https://im-api-va.tiktok.com/v1/message/send", "\u0008\u0001\u0012\u0004\u00ff\u00fe", "application/x-protobuf", action="block", rules=["block-tiktok-direct-messages"])
case("tiktok", "search", "search", "GET", "https://www.tiktok.com/api/search/general/full/?keyword=rust")

# ------------------------------------------------------------------------------ Pinterest
pin = lambda res, options: {"source_url": "/pin-builder/", "data": js({"options": options, "context": {}})}
case("pinterest", "view", "home", "GET", "https://www.pinterest.com/")
case("pinterest", "view", "resource get", "GET", "https://www.pinterest.com/resource/UserResource/get/?data=%7B%7D")
case("pinterest", "login", "session", "POST", "https://www.pinterest.com/resource/UserSessionResource/create/", pin("", {"username_or_email": "someone", "password": "x"}), F)
case("pinterest", "post", "create pin", "POST", "https://www.pinterest.com/resource/PinResource/create/", pin("", {"board_id": "987654321098765432", "description": "Cozy reading nook ideas", "title": "Reading nook", "link": "https://example.com/nook", "image_url": "https://i.pinimg.com/a.jpg"}), F)
case("pinterest", "post", "create pin with an internal URL link is redacted", "POST", "https://www.pinterest.com/resource/PinResource/create/", pin("", {"board_id": "987654321098765432", "description": "mood board", "link": "https://design.intranet.example/moodboard", "image_url": "https://i.pinimg.com/a.jpg"}), F, action="redact", rules=["redact-internal-addresses"], forwarded={"not_contains": ["design.intranet.example"]})
case("pinterest", "share", "repin", "POST", "https://www.pinterest.com/resource/RepinResource/create/", pin("", {"pin_id": "123456789012345678", "board_id": "987654321098765432", "description": "saving this"}), F)
case("pinterest", "comment", "comment", "POST", "https://www.pinterest.com/resource/AggregatedCommentResource/create/", pin("", {"objectId": "123456789012345678", "text": "where is this?"}), F)
case("pinterest", "message", "message", "POST", "https://www.pinterest.com/resource/ConversationMessagesResource/create/", pin("", {"conversation_id": "5555", "text": "check this pin"}), F)
case("pinterest", "react", "reaction", "POST", "https://www.pinterest.com/resource/PinReactionResource/create/", pin("", {"pin_id": "123456789012345678", "reaction_type": 1}), F)
case("pinterest", "follow", "follow board", "POST", "https://www.pinterest.com/resource/BoardFollowResource/create/", pin("", {"board_id": "987654321098765432"}), F)
case("pinterest", "upload", "image upload", "POST", "https://www.pinterest.com/upload-image/?img=a.jpg", "binary", "image/jpeg")
case("pinterest", "search", "search", "GET", "https://www.pinterest.com/search/pins/?q=garden")
case("pinterest", "post", "API v5 pin", "POST", "https://api.pinterest.com/v5/pins", {"board_id": "987654321098765432", "title": "Garden", "description": "Raised beds", "media_source": {"source_type": "image_url", "url": "https://example.com/a.jpg"}}, J)

# --------------------------------------------------------------------------------- Tumblr
case("tumblr", "view", "dashboard", "GET", "https://www.tumblr.com/dashboard")
case("tumblr", "login", "oauth2 token", "POST", "https://www.tumblr.com/api/v2/oauth2/token", {"grant_type": "password", "username": "someone", "password": "x"}, F)
case("tumblr", "post", "NPF post", "POST", "https://www.tumblr.com/api/v2/blog/example-blog/posts", {"content": [{"type": "text", "text": "new zine out now"}], "state": "published", "tags": "zine,art"}, J)
case("tumblr", "post", "NPF post with a Slack webhook is blocked", "POST", "https://api.tumblr.com/v2/blog/example-blog/posts", {"content": [{"type": "text", "text": "bot hook " + tv.slack_webhook()}]}, J, action="block", rules=["block-slack-token"])
case("tumblr", "share", "NPF reblog", "POST", "https://www.tumblr.com/api/v2/blog/example-blog/posts", {"content": [{"type": "text", "text": "this!!"}], "parent_tumblelog_uuid": "t:abc", "parent_post_id": "7190000000", "reblog_key": "abc"}, J)
case("tumblr", "post", "legacy text post", "POST", "https://api.tumblr.com/v2/blog/example-blog/post", {"type": "text", "title": "Hello", "body": "First post"}, F)
case("tumblr", "comment", "reply", "POST", "https://www.tumblr.com/api/v2/blog/example-blog/post/7190000000/replies", {"reply_text": "love it"}, J)
case("tumblr", "message", "message", "POST", "https://www.tumblr.com/api/v2/conversations/messages", {"type": "TEXT", "message": "hi there", "participant": "example-blog.tumblr.com", "participants": ["t:abc", "t:def"]}, J)
case("tumblr", "react", "like", "POST", "https://api.tumblr.com/v2/user/like", {"id": "7190000000", "reblog_key": "abc"}, F)
case("tumblr", "follow", "follow", "POST", "https://api.tumblr.com/v2/user/follow", {"url": "example-blog.tumblr.com"}, F)
case("tumblr", "search", "search", "GET", "https://www.tumblr.com/search/zines")

# --------------------------------------------------------------------------------- Medium
case("medium", "view", "article", "GET", "https://medium.com/@example/some-article-1a2b3c4d5e6f")
case("medium", "view", "graphql query", "POST", "https://medium.com/_/graphql", [{"operationName": "PostViewerEdgeContentQuery", "variables": {"postId": "1a2b3c4d5e6f"}, "query": "query PostViewerEdgeContentQuery { x }"}], J)
case("medium", "login", "sign in", "POST", "https://medium.com/m/signin?operation=login", {"email": "someone"}, J)
case("medium", "react", "clap", "POST", "https://medium.com/_/graphql", [{"operationName": "ClapMutation", "variables": {"targetPostId": "1a2b3c4d5e6f", "userId": "abc", "numClaps": 1}, "query": "mutation ClapMutation { x }"}], J)
case("medium", "follow", "follow user", "POST", "https://medium.com/_/graphql", [{"operationName": "FollowUserMutation", "variables": {"targetUserId": "abc"}, "query": "mutation FollowUserMutation { x }"}], J)
case("medium", "comment", "response", "POST", "https://medium.com/_/graphql", [{"operationName": "PublishPostThreadedResponse", "variables": {"inResponseToPostId": "1a2b3c4d5e6f", "deltas": [{"type": 1, "index": 0, "paragraph": {"type": 1, "text": "Thanks, very helpful"}}]}, "query": "mutation PublishPostThreadedResponse { x }"}], J)
case("medium", "post", "editor deltas", "POST", "https://medium.com/p/1a2b3c4d5e6f/deltas?logLockId=1", {"id": "1a2b3c4d5e6f", "deltas": [{"type": 1, "index": 0, "paragraph": {"type": 3, "text": "Draft title"}}, {"type": 1, "index": 1, "paragraph": {"type": 1, "text": "Opening paragraph."}}], "baseRev": 0}, J)
case("medium", "post", "editor deltas with a codename is blocked", "POST", "https://medium.com/p/1a2b3c4d5e6f/deltas", {"deltas": [{"type": 1, "index": 0, "paragraph": {"type": 1, "text": "Lessons from Operation Larkspur"}}], "baseRev": 3}, J, action="block", rules=["block-project-codename"])
case("medium", "post", "publishing API", "POST", "https://api.medium.com/v1/users/5303d74c64f66366f00cb9b2a94f3251bf5/posts", {"title": "Notes", "contentFormat": "markdown", "content": "# Notes\nSome text", "tags": ["notes"], "publishStatus": "draft"}, J)
case("medium", "upload", "image upload", "POST", "https://medium.com/_/upload", "binary", "image/png")
case("medium", "search", "search", "GET", "https://medium.com/search?q=rust")

# ---------------------------------------------------------------------------- Hacker News
case("hackernews", "view", "front page", "GET", "https://news.ycombinator.com/news")
case("hackernews", "login", "login", "POST", "https://news.ycombinator.com/login", {"goto": "news", "acct": "someone", "pw": "x"}, F)
case("hackernews", "comment", "comment", "POST", "https://news.ycombinator.com/comment", {"parent": "40512345", "goto": "item?id=40512345", "hmac": "4c5d2b1f0e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", "text": "We hit the same bug last year."}, F)
case("hackernews", "comment", "comment with a Google API key is blocked", "POST", "https://news.ycombinator.com/comment", {"parent": "40512345", "goto": "item?id=40512345", "hmac": "4c5d", "text": "works with key=" + tv.google()}, F, action="block", rules=["block-google-api-key"])
case("hackernews", "post", "submission", "POST", "https://news.ycombinator.com/r", {"fnid": "abc", "fnop": "submit-page", "title": "Show HN: a tiny proxy", "url": "https://example.com", "text": ""}, F)
case("hackernews", "react", "upvote", "GET", "https://news.ycombinator.com/vote?id=40512345&how=up&auth=abc&goto=news")
case("hackernews", "search", "algolia search", "GET", "https://hn.algolia.com/api/v1/search?query=rust")

# ------------------------------------------------------------------------------- Pinboard
case("pinboard", "view", "bookmarks", "GET", "https://pinboard.in/u:example/")
case("pinboard", "login", "login", "POST", "https://pinboard.in/auth/", {"username": "someone", "password": "x"}, F)
case("pinboard", "post", "save bookmark", "POST", "https://pinboard.in/add", {"url": "https://example.com/article", "title": "Good article", "description": "read later", "tags": "reading rust", "private": "", "toread": "on"}, F)
case("pinboard", "post", "bookmark notes with an internal URL are redacted", "POST", "https://pinboard.in/add", {"url": "https://example.com/article", "title": "Good article", "description": "compare with http://wiki.corp.example/design", "tags": "work"}, F, action="redact", rules=["redact-internal-addresses"], forwarded={"not_contains": ["wiki.corp.example"]})
case("pinboard", "react", "star a bookmark", "POST", "https://pinboard.in/star/?id=123456", {"id": "123456"}, F)
case("pinboard", "follow", "add to network", "POST", "https://pinboard.in/network/add/", {"username": "example"}, F)
case("pinboard", "post", "note", "POST", "https://pinboard.in/note/add/", {"title": "Ideas", "note": "a list of ideas"}, F)
case("pinboard", "post", "API add (values in the query string)", "GET", "https://api.pinboard.in/v1/posts/add?url=https%3A%2F%2Fexample.com&description=Example&auth_token=user%3AABC")

# ------------------------------------------------------------------------------- Raindrop
case("raindrop", "view", "app", "GET", "https://app.raindrop.io/my/0")
case("raindrop", "view", "API read", "GET", "https://api.raindrop.io/rest/v1/raindrops/0")
case("raindrop", "login", "email login", "POST", "https://api.raindrop.io/v1/auth/email/login", {"email": "someone", "password": "x"}, J)
case("raindrop", "post", "create bookmark", "POST", "https://api.raindrop.io/rest/v1/raindrop", {"link": "https://example.com/article", "title": "Article", "note": "good intro", "tags": ["reading"], "collection": {"$id": 12345678}}, J)
case("raindrop", "post", "bookmark highlight with a card is redacted", "POST", "https://api.raindrop.io/rest/v1/raindrop", {"link": "https://example.com/shop", "title": "Shop", "highlights": [{"text": "order summary", "note": "paid with " + CARD}]}, J, action="redact", rules=["redact-payment-data"], forwarded={"not_contains": [CARD], "json": {"/title": "Shop"}})
case("raindrop", "post", "batch create", "POST", "https://api.raindrop.io/rest/v1/raindrops", {"items": [{"link": "https://example.com/a", "title": "A"}, {"link": "https://example.com/b", "title": "B"}]}, J)
case("raindrop", "share", "share collection", "POST", "https://api.raindrop.io/rest/v1/collection/12345678/sharing", {"role": "viewer", "emails": ["friend@example.com"]}, J, action="log", rules=["log-email-address"])
case("raindrop", "upload", "file upload", "PUT", "https://api.raindrop.io/rest/v1/raindrop/12345/file", "--Z\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.pdf\"\r\nContent-Type: application/pdf\r\n\r\n%PDF\r\n--Z--\r\n", "multipart/form-data; boundary=Z")

# ---------------------------------------------------------------------------------- Diigo
case("diigo", "view", "library", "GET", "https://www.diigo.com/user/example")
case("diigo", "login", "sign in", "POST", "https://www.diigo.com/sign-in", {"username": "someone", "password": "x"}, F)
case("diigo", "post", "API bookmark", "POST", "https://secure.diigo.com/api/v2/bookmarks", {"url": "https://example.org/paper", "title": "Paper", "desc": "key results in section 3", "tags": "research", "shared": "yes"}, F)
case("diigo", "post", "API bookmark with an IBAN is redacted", "POST", "https://secure.diigo.com/api/v2/bookmarks", {"url": "https://example.org/donate", "title": "Donate", "desc": "IBAN " + tv.iban("DE", "370400440532013000"), "shared": "yes"}, F, action="redact", rules=["redact-payment-data"], forwarded={"not_contains": [tv.iban("DE", "370400440532013000")]})
case("diigo", "comment", "comment on an item", "POST", "https://www.diigo.com/item/comment/add", {"item_id": "123", "content": "nice find"}, F)
case("diigo", "share", "share to a group", "POST", "https://www.diigo.com/item/share_to_group", {"item_id": "123", "group": "research", "comment": "for the team"}, F)

def main():
    total = 0
    for site, cs in CASES.items():
        lines = [f"# Activity cases for {site}: generated by rules/tools/gen_site_tests.py (edit it and regenerate).", "tests:"]
        for c in cs:
            lines.append(f"  - name: {yq(c['name'])}")
            lines.append("    request:")
            for k, v in c["request"].items():
                lines.append(f"      {k}: {yq(v)}")
            lines.append("    expect:")
            for k, v in c["expect"].items():
                lines.append(f"      {k}: {yq(v)}")
        with open(os.path.join(HERE, "tests", f"site_{site}.yaml"), "w") as f:
            f.write("\n".join(lines) + "\n")
        total += len(cs)
    print(total, "site cases in", len(CASES), "files")

if __name__ == "__main__":
    main()
