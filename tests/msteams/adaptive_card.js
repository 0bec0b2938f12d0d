// Checks Adaptive Cards with Microsoft's own Adaptive Cards library (npm `adaptivecards`), as Teams would
// render them: card version 1.5 at most (what Teams supports), Teams' host config limits, every parse and
// validation error the library reports. One card per line of JSON on stdin; one line of JSON on stdout
// for each: the list of problems, empty when the card is valid.
"use strict";
const readline = require("node:readline");
const AC = require("adaptivecards/dist/adaptivecards.js");

// Teams' host config (adaptivecards-designer's microsoft-teams-light.json): at most 6 actions per set.
const hostConfig = new AC.HostConfig({ supportsInteractivity: true, actions: { maxActions: 6 } });
// Advice, not refusals: hints and deprecation notes.
const harmless = new Set([AC.ValidationEvent.Hint, AC.ValidationEvent.Deprecated]);

function problems(payload) {
  if (payload === null || typeof payload !== "object" || payload.type !== "AdaptiveCard") {
    return ['the attachment is not an object of type "AdaptiveCard"'];
  }
  if (!AC.Version.parse(payload.version, new AC.SerializationContext()).isValid) {
    return [`the card's version ${JSON.stringify(payload.version)} is not a version`];
  }
  const version = AC.Version.parse(payload.version, new AC.SerializationContext());
  if (version.major > 1 || version.minor > 5) {
    return [`card version ${payload.version} is newer than Teams renders (1.5)`];
  }
  const context = new AC.SerializationContext(AC.Versions.v1_5);
  const card = new AC.AdaptiveCard();
  card.hostConfig = hostConfig;
  card.parse(payload, context);
  const found = [];
  for (let i = 0; i < context.eventCount; i++) {
    const event = context.getEventAt(i);
    if (!harmless.has(event.event)) found.push(`${AC.ValidationEvent[event.event]}: ${event.message}`);
  }
  for (const event of card.validateProperties().validationEvents) {
    if (!harmless.has(event.event)) found.push(`${AC.ValidationEvent[event.event]}: ${event.message}`);
  }
  return found;
}

const lines = readline.createInterface({ input: process.stdin, terminal: false });
lines.on("line", (line) => {
  let answer;
  try {
    answer = problems(JSON.parse(line));
  } catch (error) {
    answer = [`not a card: ${error.message}`];
  }
  process.stdout.write(JSON.stringify(answer) + "\n");
});
