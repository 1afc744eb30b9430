"""Reading and writing: video frames (video: reading; media: shaping, writing, pictures), audio (audio:
files and features; render: Griffin-Lim and spectrogram pictures), files written atomically, plots."""
