"""Milestones of neural networks and deep learning, 1943-2024: chapter 00's timeline.

A data table, not a concept: one ``(year, what happened)`` pair per year, in order of year. The
chapter's slider draws them, and its asserts check the years and the names its prose quotes.
"""
from __future__ import annotations

MILESTONES: list[tuple[int, str]] = [  # (year, what happened)
    (1943, "McCulloch & Pitts: a threshold neuron computes logic"),
    (1958, "Rosenblatt's perceptron learns its weights from examples"),
    (1969, "Minsky & Papert: one-layer perceptrons cannot compute XOR"),
    (1970, "Linnainmaa: reverse-mode automatic differentiation"),
    (1979, "Fukushima's neocognitron, ancestor of the CNN"),
    (1982, "Hopfield: a recurrent network as associative memory"),
    (1986, "Rumelhart, Hinton & Williams: backpropagation"),
    (1989, "LeCun: a convolutional net reads zip codes; Cybenko: universal approximation"),
    (1995, "Cortes & Vapnik: support vector machines take the lead"),
    (1997, "Hochreiter & Schmidhuber: the LSTM"),
    (1998, "LeNet-5 and the MNIST digits"),
    (2006, "Hinton & Salakhutdinov: layer-wise pretraining of deep nets"),
    (2009, "ImageNet (Deng et al.); GPUs make deep nets fast (Raina et al.)"),
    (2012, "AlexNet wins ImageNet: top-5 error 25.8% -> 16.4%"),
    (2013, "word2vec embeddings; DQN plays Atari from pixels"),
    (2014, "GANs; sequence-to-sequence translation; attention"),
    (2015, "ResNet: 152 layers, 3.57% top-5 error; batch normalization"),
    (2016, "AlphaGo defeats Lee Sedol at Go"),
    (2017, "The Transformer: 'Attention is all you need'"),
    (2018, "GPT and BERT: pretrain on raw text, then fine-tune"),
    (2019, "GPT-2: 1.5 B parameters"),
    (2020, "Scaling laws; GPT-3 (175 B) learns from prompts; AlphaFold 2; diffusion models"),
    (2021, "CLIP joins images and text"),
    (2022, "ChatGPT; text-to-image diffusion (DALL-E 2, Stable Diffusion)"),
    (2023, "GPT-4; open-weight LLMs (Llama)"),
    (2024, "Nobel prizes: Hopfield & Hinton (physics); Baker, Hassabis & Jumper (chemistry)"),
]
