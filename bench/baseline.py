"""What a team would write without the relay: one loop over slack_sdk and tweepy, each post waiting for
the one before, each library retrying rate limits its own way (slack_sdk's `RateLimitErrorRetryHandler`,
tweepy's `wait_on_rate_limit`). Run against the same fakes, in a thread, so it is timed the same way."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import tweepy
from slack_sdk import WebClient
from slack_sdk.http_retry.builtin_handlers import RateLimitErrorRetryHandler

from tests.fakes.oauth1 import OAuth1Credentials


def sequential(
    slack_url: str, token: str, channels: Sequence[str], x_url: str, x: OAuth1Credentials, text: str
) -> float:
    """Post `text` to every channel, then to X; return the seconds it took."""
    slack = WebClient(token=token, base_url=slack_url)
    slack.retry_handlers.append(RateLimitErrorRetryHandler(max_retry_count=10))
    twitter = tweepy.Client(
        consumer_key=x.consumer_key,
        consumer_secret=x.consumer_secret,
        access_token=x.access_token,
        access_token_secret=x.access_token_secret,
        wait_on_rate_limit=True,
    )
    _redirect(twitter, x_url)
    started = time.perf_counter()
    for channel in channels:
        slack.chat_postMessage(channel=channel, text=text)
    twitter.create_tweet(text=text, user_auth=True)
    return time.perf_counter() - started


def _redirect(client: tweepy.Client, url: str) -> None:
    """tweepy always calls api.twitter.com: send its requests to the fake instead, before they are signed."""
    request = client.session.request

    def to_fake(method: str, address: str, **options: Any) -> Any:
        return request(method, address.replace("https://api.twitter.com", url.rstrip("/")), **options)

    client.session.request = to_fake  # type: ignore[method-assign]
