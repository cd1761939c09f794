"""Drive one real posting SDK against a site, for tests/integration/sdk.rs.

    drive.py SDK OP TEXT

SDK: mastodon (Mastodon.py), tweepy-v2 (tweepy Client, X API v2), tweepy-v1 (tweepy API,
X API v1.1), atproto (Bluesky), praw (Reddit).
OP: post (the SDK's usual way to publish TEXT) or react (a like, favourite or comment on
what the local site answered for a post, for the captured rule tests).

The SDK runs as in any script: it reads the proxy from HTTPS_PROXY and the CA bundle from
REQUESTS_CA_BUNDLE (requests: Mastodon.py, tweepy, praw) or SSL_CERT_FILE (httpx: atproto);
the test points those at the gateway or at a plain tunnel to the local site. The
credentials are the local site's; only what the SDK sends is under test.

Prints one JSON object: {"ok": true} or {"ok": false, "type": "module.Class", "bases":
[...], "text": str(exception)}. Exits 0 either way; anything else (an SDK that cannot
even be imported) is a crash the test reports with stderr.
"""

import json
import sys

# atproto stamps records with the current time; the test compares what the site received
# through the gateway with a direct run, byte for byte, so both runs use one clock.
FIXED_TIME = "2025-01-01T12:00:00.000Z"


def mastodon(op, text):
    from mastodon import Mastodon

    api = Mastodon(access_token="sdk-test-token", api_base_url="https://mastodon.social")
    api.instance()
    api.account_verify_credentials()
    if op == "post":
        api.status_post(text, visibility="public")
    else:
        api.status_favourite("113000000000000001")


def tweepy_v2(op, text):
    import tweepy

    client = tweepy.Client(
        consumer_key="sdk-consumer-key",
        consumer_secret="sdk-consumer-secret",
        access_token="1000000000000000001-sdktoken",
        access_token_secret="sdk-token-secret",
    )
    if op == "post":
        client.create_tweet(text=text)
    else:
        client.like("1800000000000000001")


def tweepy_v1(op, text):
    import tweepy

    auth = tweepy.OAuth1UserHandler(
        "sdk-consumer-key", "sdk-consumer-secret", "1000000000000000001-sdktoken", "sdk-token-secret"
    )
    api = tweepy.API(auth)
    if op == "post":
        api.update_status(text)
    else:
        api.create_favorite(1800000000000000001)


def atproto(op, text):
    from atproto import Client

    class FixedClockClient(Client):
        def get_current_time_iso(self):
            return FIXED_TIME

    client = FixedClockClient()
    client.login("alice.bsky.social", "sdk-app-password")
    if op == "post":
        client.send_post(text)
    else:
        client.like(
            "at://did:plc:sdktestalice00000000000/app.bsky.feed.post/3lsdktest0001",
            "bafyreib2rxk3rh6kzwq2rzqnsoxtvxkgbb7k7qgkrfkanrd7dpw5bvrsky",
        )


def praw(op, text):
    import praw as praw_sdk

    reddit = praw_sdk.Reddit(
        client_id="sdk-client-id",
        client_secret="sdk-client-secret",
        username="sdk_tester",
        password="sdk-password",
        user_agent="permeable-sdk-test/1.0 by u/sdk_tester",
        check_for_updates=False,
    )
    if op == "post":
        reddit.subreddit("test").submit("From the gateway test", selftext=text)
    else:
        reddit.submission(id="1sdkt01").reply(text)


SDKS = {
    "mastodon": mastodon,
    "tweepy-v2": tweepy_v2,
    "tweepy-v1": tweepy_v1,
    "atproto": atproto,
    "praw": praw,
}


def main():
    sdk, op, text = sys.argv[1:4]
    try:
        SDKS[sdk](op, text)
        result = {"ok": True}
    except Exception as e:  # the exception the SDK raised is the result under test
        cls = type(e)
        result = {
            "ok": False,
            "type": f"{cls.__module__}.{cls.__qualname__}",
            "bases": [f"{b.__module__}.{b.__qualname__}" for b in cls.__mro__],
            "text": str(e),
        }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
