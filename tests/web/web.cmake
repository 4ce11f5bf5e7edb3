# web.cmake - end-to-end tests of the web client (web-client/): playwright-core
# drives Debian's chromium (fake camera and microphone) against a real
# telemed-server on loopback. Screenshots go to ${CMAKE_BINARY_DIR}/web-screenshots.
tm_node_test(web_visit tests/web/visit.test.mjs)
tm_node_test(web_waiting tests/web/waiting.test.mjs)
tm_node_test(web_reconnect tests/web/reconnect.test.mjs)
tm_node_test(web_media_retry tests/web/media_retry.test.mjs)
tm_node_test(web_ui tests/web/ui.test.mjs)
# Every page and view at 360 px in both languages: no sideways scroll (issue 18).
tm_node_test(web_narrow tests/web/narrow.test.mjs)
tm_node_test(web_supervisor tests/web/supervisor.test.mjs)
# The scheduling page (issue 18).
tm_node_test(web_schedule tests/web/schedule.test.mjs)
tm_node_test(web_words tests/web/words.test.mjs)
tm_node_test(web_static tests/web/static.test.mjs)
tm_node_test(web_mobile tests/web/mobile.test.mjs)
tm_node_test(web_party tests/web/party.test.mjs)
# The pages' simulcast: layers per receiver's tile, quality judged per sender.
tm_node_test(web_party_simulcast tests/web/party_simulcast.test.mjs)
# Guest links from the attending doctor's page: made, used, withdrawn.
tm_node_test(web_party_links tests/web/party_links.test.mjs)
# The active speaker's tile highlighted: one browser talks (a generated WAV
# as its microphone), the others are silent.
tm_node_test(web_party_speaker tests/web/party_speaker.test.mjs)
tm_node_test(web_patient_info tests/web/patient_info.test.mjs)
# Issue 15: the speaker choice in a visit, the header switch's contrast; an
# H.264-only phone with a VP8+H.264 doctor (one video codec per visit).
tm_node_test(web_speaker tests/web/speaker.test.mjs)
tm_node_test(web_codec tests/web/codec.test.mjs)
# Issue 18: the supervisor's figures page.
tm_node_test(web_figures tests/web/figures.test.mjs)
# issue 18
tm_node_test(web_consult tests/web/consult.test.mjs)
# issue 18 (transfer18)
tm_node_test(web_transfer tests/web/transfer.test.mjs)
# A camera turned off mid-visit is "audio only" to the doctor and supervisors
# (zh-CN and English), not "Poor" or a frozen frame; on again, video is back.
tm_node_test(web_camera_off tests/web/camera_off.test.mjs)
# A muted microphone sends nothing; the doctor sees "microphone off" (zh-CN,
# English), no alert, and hears the patient again when unmuted.
tm_node_test(web_mic_mute tests/web/mic_mute.test.mjs)
# followup18: the doctor's patient timeline, the follow-up form, the patient's upcoming follow-up
tm_node_test(web_followup tests/web/followup.test.mjs)
# Issue 15: the supervisor's video wall, over live visits between the
# reference webrtcbin peers (tests/webrtc).
if(TARGET webrtc_client)
  tm_node_test(web_wall tests/web/wall.test.mjs)
endif()
# Issue 17: a third and a fourth join while the members already in keep their
# video (longest gap between shown frames, from the browsers' own timestamps).
tm_node_test(web_party_join tests/web/party_join.test.mjs)
