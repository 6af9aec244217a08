// Hear the evidence: play one snippet of a song the user dropped, straight from their file.
//
// One <audio> element for the whole page, so only one snippet ever plays. Its source is an object
// URL of the user's File: the song is read from their disk by the browser; nothing is kept or
// fetched from the server.

const MEDIA_ERRORS = {
  1: "reading it was stopped",
  2: "reading it failed",
  3: "it could not be decoded",
  4: "its format is not one this browser plays, or the page may not read it",
};

export class SnippetPlayer {
  // audio: the page's <audio> element. onChange(owner, index, time): the snippet playing (index -1:
  // none) and the play head in seconds. onError(owner, message): the browser could not play it.
  constructor(audio, { onChange, onError }) {
    this.audio = audio;
    this.onChange = onChange;
    this.onError = onError;
    this.now = null;                 // { owner, index, start, end } while a snippet plays
    this.frame = 0;
    audio.addEventListener("timeupdate", () => this.check());
    audio.addEventListener("playing", () => this.check());
    audio.addEventListener("ended", () => this.stop());
    // Paused by something else (media keys, the system): forget the snippet. A pause of ours is
    // followed at once by play() for the next snippet, so the element is no longer paused then.
    audio.addEventListener("pause", () => { if (this.now && audio.paused) this.stop(); });
    audio.addEventListener("error", () => {
      if (this.now) this.fail(this.now.owner, audio.error);
    });
  }

  isPlaying(owner, index) {
    return !!this.now && this.now.owner === owner && (index === undefined || this.now.index === index);
  }

  // Play [start, end) seconds of `url` for `owner`'s snippet `index`; the same snippet again stops it.
  toggle(owner, index, url, start, end) {
    if (this.isPlaying(owner, index)) {
      this.stop();
      return;
    }
    this.stop();
    const audio = this.audio;
    if (audio.src !== url) audio.src = url;
    this.now = { owner, index, start, end };
    audio.currentTime = start;        // before the metadata is in, the browser seeks once it is
    this.onChange(owner, index, start);
    audio.play().catch((err) => {
      if (err && err.name === "AbortError") return;      // interrupted by the next snippet or a stop
      if (this.isPlaying(owner, index)) this.fail(owner, err);
    });
    this.tick();
  }

  stop() {
    const was = this.now;
    this.now = null;
    cancelAnimationFrame(this.frame);
    if (!this.audio.paused) this.audio.pause();
    if (was) this.onChange(was.owner, -1, NaN);
  }

  // The snippet ends where it ends: checked on every frame while visible, on timeupdate otherwise.
  check() {
    const now = this.now;
    if (!now) return;
    const t = this.audio.currentTime;
    if (t >= now.end - 0.01) this.stop();
    else if (!this.audio.seeking && t >= now.start - 0.5) this.onChange(now.owner, now.index, t);
  }

  tick() {
    cancelAnimationFrame(this.frame);
    const step = () => {
      if (!this.now) return;
      this.check();
      this.frame = requestAnimationFrame(step);
    };
    this.frame = requestAnimationFrame(step);
  }

  fail(owner, err) {
    this.stop();
    let why;
    if (err instanceof MediaError) why = MEDIA_ERRORS[err.code] || `media error ${err.code}`;
    else if (err && err.name === "NotAllowedError") why = "the browser did not allow this page to play sound";
    else if (err && err.name === "NotSupportedError") why = MEDIA_ERRORS[4];
    else why = (err && err.message) || "unknown error";
    this.onError(owner, `this browser cannot play the file (${why}); the verdict does not depend on it`);
  }
}
