"""Realistic requests of the catalogue's sites carrying a text in their content field.
Each wrapper returns (request dict, site, activity)."""
import json
from urllib.parse import urlencode, quote

J = {"content-type": "application/json"}
F = {"content-type": "application/x-www-form-urlencoded"}

def x_tweet(t):
    body = {"variables": {"tweet_text": t, "dark_request": False, "media": {"media_entities": [], "possibly_sensitive": False}, "semantic_annotation_ids": []},
            "features": {"tweetypie_unmention_optimization_enabled": True}, "queryId": "bDE2rBtZb3uyrczSZ_pI9g"}
    return dict(method="POST", url="https://x.com/i/api/graphql/bDE2rBtZb3uyrczSZ_pI9g/CreateTweet", headers=J, body=json.dumps(body, ensure_ascii=False)), "x", "post"

def x_dm(t):
    body = {"conversation_id": "1490000000000000001-1490000000000000002", "recipient_ids": False, "request_id": "7f3c1a2e-0b7d-4c8e-9a51-1d2f3e4a5b6c", "text": t, "cards_platform": "Web-12", "include_cards": 1}
    return dict(method="POST", url="https://x.com/i/api/1.1/dm/new2.json?ext=mediaColor", headers=J, body=json.dumps(body, ensure_ascii=False)), "x", "message"

def mastodon_form(t):
    body = urlencode({"status": t, "visibility": "public", "language": "en"})
    return dict(method="POST", url="https://mastodon.social/api/v1/statuses", headers=F, body=body), "mastodon", "post"

def mastodon_json_dm(t):
    body = {"status": "@carol@hachyderm.io " + t, "visibility": "direct", "in_reply_to_id": None, "media_ids": [], "sensitive": False, "spoiler_text": ""}
    return dict(method="POST", url="https://hachyderm.io/api/v1/statuses", headers=J, body=json.dumps(body, ensure_ascii=False)), "mastodon", "message"

def bluesky_post(t):
    body = {"repo": "did:plc:ewvi7nxzyoun6zhxrhs64oiz", "collection": "app.bsky.feed.post",
            "record": {"$type": "app.bsky.feed.post", "text": t, "langs": ["en"], "createdAt": "2024-06-01T10:00:00.000Z"}}
    return dict(method="POST", url="https://morel.us-east.host.bsky.network/xrpc/com.atproto.repo.createRecord", headers=J, body=json.dumps(body, ensure_ascii=False)), "bluesky", "post"

def bluesky_dm(t):
    body = {"convoId": "3knxyzq2abc2k", "message": {"text": t, "facets": []}}
    return dict(method="POST", url="https://api.bsky.chat/xrpc/chat.bsky.convo.sendMessage", headers=J, body=json.dumps(body, ensure_ascii=False)), "bluesky", "message"

def reddit_comment(t):
    body = urlencode({"thing_id": "t3_1d5xk2q", "text": t, "api_type": "json", "return_rtjson": "true"})
    return dict(method="POST", url="https://oauth.reddit.com/api/comment", headers=F, body=body), "reddit", "comment"

def reddit_submit(t):
    body = urlencode({"sr": "sysadmin", "kind": "self", "title": "Question about our setup", "text": t, "api_type": "json"})
    return dict(method="POST", url="https://www.reddit.com/api/submit", headers=F, body=body), "reddit", "post"

def linkedin_share(t):
    body = {"visibleToConnectionsOnly": False, "externalAudienceProviders": [], "commentaryV2": {"text": t, "attributes": []}, "origin": "FEED", "allowedCommentersScope": "ALL", "postState": "PUBLISHED", "media": []}
    return dict(method="POST", url="https://www.linkedin.com/voyager/api/contentcreation/normShares", headers=J, body=json.dumps(body, ensure_ascii=False)), "linkedin", "post"

def linkedin_message(t):
    body = {"message": {"body": {"attributes": [], "text": t}, "renderContentUnions": [], "conversationUrn": "urn:li:msg_conversation:(urn:li:fsd_profile:ACoAAB1234,2-ZmFrZQ==)", "originToken": "0b5f3c52-2d7a-4f0e-8f11-2a9d7c6e5b4a"}, "mailboxUrn": "urn:li:fsd_profile:ACoAAB1234", "trackingId": "abcdefghijklmnop", "dedupeByClientGeneratedToken": False}
    return dict(method="POST", url="https://www.linkedin.com/voyager/api/voyagerMessagingDashMessengerMessages?action=createMessage", headers=J, body=json.dumps(body, ensure_ascii=False)), "linkedin", "message"

def facebook_post(t):
    variables = {"input": {"composer_entry_point": "inline_composer", "composer_source_surface": "newsfeed", "idempotence_token": "7c1e6f0a-3b2d_FEED", "source": "WWW", "audience": {"privacy": {"base_state": "FRIENDS"}}, "message": {"ranges": [], "text": t}, "actor_id": "100000000000001", "client_mutation_id": "1"}}
    body = urlencode({"av": "100000000000001", "__user": "100000000000001", "fb_dtsg": "NAcN-fake-dtsg:17:1700000000", "fb_api_caller_class": "RelayModern", "fb_api_req_friendly_name": "ComposerStoryCreateMutation", "variables": json.dumps(variables, ensure_ascii=False), "server_timestamps": "true", "doc_id": "7711610262190099"})
    return dict(method="POST", url="https://www.facebook.com/api/graphql/", headers=F, body=body), "facebook", "post"

def facebook_comment(t):
    variables = {"input": {"feedback_id": "ZmVlZGJhY2s6MTIzNDU2Nzg5MA==", "message": {"ranges": [], "text": t}, "actor_id": "100000000000001", "client_mutation_id": "2", "attachments": None}}
    body = urlencode({"av": "100000000000001", "fb_api_caller_class": "RelayModern", "fb_api_req_friendly_name": "useCometUFICreateCommentMutation", "variables": json.dumps(variables, ensure_ascii=False), "doc_id": "7384155688320100"})
    return dict(method="POST", url="https://www.facebook.com/api/graphql/", headers=F, body=body), "facebook", "comment"

def youtube_comment(t):
    body = {"context": {"client": {"clientName": "WEB", "clientVersion": "2.20240530.01.00", "hl": "en"}}, "createCommentParams": "Egtfa0tYZ2Y0S1NQZyoCCABQAQ%3D%3D", "commentText": t}
    return dict(method="POST", url="https://www.youtube.com/youtubei/v1/comment/create_comment?prettyPrint=false", headers=J, body=json.dumps(body, ensure_ascii=False)), "youtube", "comment"

def hn_comment(t):
    body = urlencode({"parent": "40512345", "goto": "item?id=40512345", "hmac": "4c5d2b1f0e9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c", "text": t})
    return dict(method="POST", url="https://news.ycombinator.com/comment", headers=F, body=body), "hackernews", "comment"

def pinterest_pin(t):
    data = {"options": {"board_id": "987654321098765432", "field_set_key": "create_success", "skip_pin_create_log": True, "description": t, "link": "https://example.com/recipe", "title": "Weekend project", "image_url": "https://i.pinimg.com/originals/aa/bb/cc.jpg", "method": "uploaded"}, "context": {}}
    body = urlencode({"source_url": "/pin-builder/", "data": json.dumps(data, ensure_ascii=False)})
    return dict(method="POST", url="https://www.pinterest.com/resource/PinResource/create/", headers=F, body=body), "pinterest", "post"

def raindrop_note(t):
    body = {"link": "https://example.com/article", "title": "Reading list", "note": t, "tags": ["work"], "collection": {"$id": 12345678}, "pleaseParse": {}}
    return dict(method="POST", url="https://api.raindrop.io/rest/v1/raindrop", headers=J, body=json.dumps(body, ensure_ascii=False)), "raindrop", "post"

def tumblr_post(t):
    body = {"content": [{"type": "text", "text": t}], "layout": [], "state": "published", "tags": "notes"}
    return dict(method="POST", url="https://www.tumblr.com/api/v2/blog/example-blog/posts", headers=J, body=json.dumps(body, ensure_ascii=False)), "tumblr", "post"

def threads_post(t):
    body = urlencode({"caption": t, "publish_mode": "text_post", "text_post_app_info": json.dumps({"reply_control": 0}), "upload_id": "1717236000000", "audience": "default"})
    return dict(method="POST", url="https://www.threads.net/api/v1/media/configure_text_only_post/", headers=F, body=body), "threads", "post"

def instagram_comment(t):
    body = urlencode({"comment_text": t, "replied_to_comment_id": ""})
    return dict(method="POST", url="https://www.instagram.com/api/v1/web/comments/3391234567890123456/add/", headers=F, body=body), "instagram", "comment"

def diigo_bookmark(t):
    body = urlencode({"url": "https://example.org/paper", "title": "Paper to read", "desc": t, "tags": "research,later", "shared": "yes"})
    return dict(method="POST", url="https://secure.diigo.com/api/v2/bookmarks", headers=F, body=body), "diigo", "post"

def medium_api(t):
    body = {"title": "Notes from the week", "contentFormat": "markdown", "content": t, "tags": ["engineering"], "publishStatus": "draft"}
    return dict(method="POST", url="https://api.medium.com/v1/users/5303d74c64f66366f00cb9b2a94f3251bf5/posts", headers=J, body=json.dumps(body, ensure_ascii=False)), "medium", "post"

ALL = [x_tweet, mastodon_form, bluesky_post, reddit_comment, linkedin_share, facebook_post, youtube_comment,
       hn_comment, pinterest_pin, raindrop_note, tumblr_post, threads_post, instagram_comment, x_dm,
       bluesky_dm, linkedin_message, mastodon_json_dm, reddit_submit, facebook_comment, diigo_bookmark, medium_api]
