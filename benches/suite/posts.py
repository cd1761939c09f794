#!/usr/bin/env python3
"""Scenario 3's request bodies: a 2 KiB CreateTweet post (post.json) and the same post with
a card number in its text (post-redact.json), written to the directory given."""
import json, sys
words = ("the quarterly update from our team is out and we are proud of what shipped "
         "this year thanks to everyone who helped with the launch").split()
def post(text):
    feats, i = {}, 0
    body = None
    while True:
        feats[f"feature_flag_number_{i}_enabled"] = True
        doc = {"variables": {"tweet_text": text, "dark_request": False,
                             "media": {"media_entities": [], "possibly_sensitive": False},
                             "semantic_annotation_ids": []},
               "features": feats, "queryId": "abc123"}
        s = json.dumps(doc, separators=(",", ":"))
        if len(s) >= 2048:
            return (body or s).encode()
        body, i = s, i + 1
text = " ".join(words[(i * 7) % len(words)] for i in range(48))[:270]
open(sys.argv[1] + "/post.json", "wb").write(post(text))
card = text[:200] + " card 4111 1111 1111 1111 thanks"
open(sys.argv[1] + "/post-redact.json", "wb").write(post(card))
