// The networks' own reference code, answering batches: one JSON request per line on stdin, one JSON answer
// per line on stdout. Started once per test session by tests/oracle.py, so thousands of texts compare in
// seconds. Requests: {"twitter": [texts]} → parseTweet and URL extraction per text (twitter-text 3.1.0);
// {"richtext": [texts]} → detectFacetsWithoutResolution, graphemeLength and UTF-8 length (@atproto/api).
import readline from 'node:readline';
import twitter from 'twitter-text';
import { RichText } from '@atproto/api';

function tweet(text) {
  const parsed = twitter.parseTweet(text);
  const urls = twitter.extractUrlsWithIndices(text).map((u) => ({ url: u.url, indices: u.indices }));
  return { weightedLength: parsed.weightedLength, valid: parsed.valid, urls };
}

function richtext(text) {
  const rt = new RichText({ text });
  rt.detectFacetsWithoutResolution();
  return { facets: rt.facets ?? [], graphemes: rt.graphemeLength, bytes: rt.length };
}

const lines = readline.createInterface({ input: process.stdin, terminal: false });
for await (const line of lines) {
  const request = JSON.parse(line);
  const answer = {};
  if (request.twitter) answer.twitter = request.twitter.map(tweet);
  if (request.richtext) answer.richtext = request.richtext.map(richtext);
  process.stdout.write(JSON.stringify(answer) + '\n');
}
