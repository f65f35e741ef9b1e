/** The OpenIM set_conversations seed request (shared/seeds/openim-set_conversations.en.txt), verbatim. */
export const SEED_BODY = `{
"userIDs": [
"6965946400"
],
"conversation": {
"conversationID": "si_4365007572_6965946400",
"conversationType": 1,
"userID": "4365007572",
"groupID": "",
"recvMsgOpt": 0,
"attachedInfo": "attached",
"isPinned": false,
"isPrivateChat": true,
"ex": "",
"burnDuration": 30
}
}`;
