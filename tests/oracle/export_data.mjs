// Writes the data the runtime ports need, straight from the reference packages installed here, so the
// versions in the file names are the versions the oracle runs: relay/reference/twitter-text-3.1.0.json
// (TLD lists, character groups, the v3 weights, twemoji-parser's emoji pattern) and
// relay/reference/tlds-<version>.json (the list @atproto/api checks bare domains against).
//   node tests/oracle/export_data.mjs      (after bash tests/oracle/install.sh)
import { createRequire } from 'node:module';
import { writeFileSync } from 'node:fs';

const require = createRequire(import.meta.url);
const source = (name) => require(`twitter-text/dist/regexp/${name}.js`).source;
const alternatives = (name) => source(name).replace(/^\(\?:\(\?:/, '').replace(/\)\(\?=.*$/, '').split('|');
const version = (name) => require(`${name}/package.json`).version;
const out = new URL('../../relay/reference/', import.meta.url);

const twitter = {
  source: `twitter-text ${version('twitter-text')} (Apache-2.0) and twemoji-parser ${version('twemoji-parser')} (MIT), from npm`,
  config: require('twitter-text/dist/configs.js').version3,
  gtlds: alternatives('validGTLD'),
  cctlds: alternatives('validCCTLD'),
  punct: source('punct'),
  spaces: source('spacesGroup'),
  invalid: source('invalidCharsGroup'),
  directional: source('directionalMarkersGroup'),
  latin_accents: source('latinAccentChars'),
  cyrillic: source('cyrillicLettersAndMarks'),
  emoji: require('twemoji-parser/dist/lib/regex.js').default.source,
};
writeFileSync(new URL(`twitter-text-${version('twitter-text')}.json`, out), JSON.stringify(twitter, null, 1) + '\n');
const tlds = { source: `tlds ${version('tlds')} (MIT), as @atproto/api ${version('@atproto/api')} uses it`, tlds: require('tlds') };
writeFileSync(new URL(`tlds-${version('tlds')}.json`, out), JSON.stringify(tlds) + '\n');
